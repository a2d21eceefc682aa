//! HPKE key wraps, key-wrap envelopes, and roster verification rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod fixture;
}

use attune_crypto::{
    open_envelope, seal_key_envelope, unwrap_key, wrap_key, DeviceIdentity, SymmetricKey, WrapError,
};
use attune_proto::{
    Hash32, KeyId, KeyWrap, MemberId, Roster, RosterChange, RosterError, RosterEvent, SpaceId,
};
use support::fixture::{random16, Author, Couple};

#[test]
fn wrap_opens_only_for_its_device_space_and_key_id() {
    let c = Couple::new();
    let key = SymmetricKey::generate();
    let wrap = wrap_key(&c.space, &c.b.public(), KeyId::Epoch(1), &key).unwrap();
    let wrap = KeyWrap::decode(&wrap.encode()).unwrap();
    assert_eq!(unwrap_key(&c.space, &c.b, &wrap).unwrap(), key);
    assert_eq!(
        unwrap_key(&c.space, &c.a, &wrap),
        Err(WrapError::NotForThisDevice)
    );
    assert_eq!(
        unwrap_key(&SpaceId(random16()), &c.b, &wrap),
        Err(WrapError::Open)
    );
    let mut relabelled = wrap.clone();
    relabelled.key = KeyId::Epoch(2);
    assert_eq!(
        unwrap_key(&c.space, &c.b, &relabelled),
        Err(WrapError::Open)
    );
    let mut flipped = wrap.clone();
    flipped.ciphertext[0] ^= 1;
    assert_eq!(unwrap_key(&c.space, &c.b, &flipped), Err(WrapError::Open));
}

#[test]
fn key_envelope_carries_wraps_signed_by_the_author() {
    let c = Couple::new();
    let key = SymmetricKey::generate();
    let wraps = vec![
        wrap_key(&c.space, &c.a.public(), KeyId::Epoch(1), &key).unwrap(),
        wrap_key(&c.space, &c.b.public(), KeyId::Epoch(1), &key).unwrap(),
    ];
    let header = Author::new(&c.a).next_header(c.space);
    let epoch0 = c.keys.get(&KeyId::Epoch(0)).unwrap();
    let env = seal_key_envelope(&c.a, header, (KeyId::Epoch(0), epoch0), &wraps).unwrap();
    let opened = open_envelope(&env, &c.roster, &c.keys).unwrap();
    let attune_crypto::Content::KeyWraps(body) = opened.content else {
        panic!("a key-wrap envelope opens as key wraps");
    };
    let got = KeyWrap::decode_list(&body).unwrap();
    let mine = got.iter().find(|w| w.recipient == c.b.id()).unwrap();
    assert_eq!(unwrap_key(&c.space, &c.b, mine).unwrap(), key);
    let mut tampered = env.clone();
    tampered.body[10] ^= 1;
    assert!(open_envelope(&tampered, &c.roster, &c.keys).is_err());
}

#[test]
fn roster_with_link_and_revoke_verifies() {
    let mut c = Couple::new();
    let laptop = DeviceIdentity::generate();
    let b = c.b.clone();
    c.append_roster(
        &b,
        RosterChange::Link {
            member: c.member_b,
            device: laptop.public(),
        },
    );
    assert!(c.roster.is_active(&laptop.id()));
    c.append_roster(
        &laptop,
        RosterChange::Revoke {
            device: b.id(),
            last_seq: 4,
        },
    );
    assert!(!c.roster.is_active(&b.id()));
    assert!(c.roster.may_author(&b.id(), 4));
    assert!(!c.roster.may_author(&b.id(), 5));
    assert_eq!(c.roster.members().len(), 2);
    assert_eq!(c.roster.len(), 4);
}

fn next(
    c: &Couple,
    signer: &DeviceIdentity,
    change: RosterChange,
) -> attune_proto::SignedRosterEvent {
    let last = c.events.last().unwrap();
    signer.sign_roster_event(RosterEvent {
        space: c.space,
        seq: last.event.seq + 1,
        prev: last.hash(),
        signer: signer.id(),
        legacy_at: None,
        change,
    })
}

#[test]
fn roster_rules_are_enforced() {
    let c = Couple::new();
    let outsider = DeviceIdentity::generate();
    let stranger = DeviceIdentity::generate();
    let mut r = c.roster.clone();

    // The relay (or anyone outside) cannot add a device: it cannot sign as a member.
    let injected = next(
        &c,
        &outsider,
        RosterChange::Link {
            member: c.member_a,
            device: outsider.public(),
        },
    );
    assert_eq!(
        r.apply(&injected),
        Err(RosterError::UnauthorizedSigner { seq: 3 })
    );

    // A signature by a member over a changed event fails.
    let mut forged = next(
        &c,
        &c.a,
        RosterChange::Link {
            member: c.member_a,
            device: stranger.public(),
        },
    );
    forged.event.change = RosterChange::Link {
        member: c.member_a,
        device: DeviceIdentity::generate().public(),
    };
    assert!(matches!(
        r.apply(&forged),
        Err(RosterError::BadSignature { .. })
    ));

    // A member cannot link devices to, or revoke devices of, the partner.
    let cross = next(
        &c,
        &c.a,
        RosterChange::Link {
            member: c.member_b,
            device: stranger.public(),
        },
    );
    assert_eq!(r.apply(&cross), Err(RosterError::NotOwnMember { seq: 3 }));
    let revoke_partner = next(
        &c,
        &c.a,
        RosterChange::Revoke {
            device: c.b.id(),
            last_seq: 0,
        },
    );
    assert_eq!(
        r.apply(&revoke_partner),
        Err(RosterError::NotOwnMember { seq: 3 })
    );

    // No third member.
    let third = next(
        &c,
        &c.a,
        RosterChange::Join {
            member: MemberId(random16()),
            device: stranger.public(),
        },
    );
    assert_eq!(r.apply(&third), Err(RosterError::SpaceFull { seq: 3 }));

    // Events must chain: wrong prev, skipped sequence, another space.
    let mut unchained = next(
        &c,
        &c.a,
        RosterChange::Link {
            member: c.member_a,
            device: stranger.public(),
        },
    );
    unchained.event.prev = Hash32([5; 32]);
    let unchained = c.a.sign_roster_event(unchained.event);
    assert_eq!(
        r.apply(&unchained),
        Err(RosterError::BrokenChain { seq: 3 })
    );
    let mut skipped = unchained.event;
    skipped.seq = 4;
    assert!(matches!(
        r.apply(&c.a.sign_roster_event(skipped)),
        Err(RosterError::BadSequence {
            expected: 3,
            found: 4
        })
    ));
    // Nothing above changed the roster.
    assert_eq!(r, c.roster);

    // Verification starts from a creation event signed by the created device.
    assert_eq!(
        Roster::verify(c.space, &c.events[1..]),
        Err(RosterError::BadCreate)
    );
    assert_eq!(
        Roster::verify(SpaceId(random16()), &c.events),
        Err(RosterError::WrongSpace { seq: 1 })
    );
    let mut bad_create = c.events[0];
    bad_create.signature[0] ^= 1;
    assert!(matches!(
        Roster::verify(c.space, &[bad_create]),
        Err(RosterError::BadSignature { seq: 1, .. })
    ));
}
