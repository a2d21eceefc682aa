//! One test per integrity class, each building its bad case for real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod fixture;
}

use attune_crypto::{
    seal_envelope, ChainVerifier, Class, DeviceIdentity, HeadsProblem, SymmetricKey,
};
use attune_proto::{KeyId, RosterChange, SpaceId};
use support::fixture::{random16, Author, Couple};

fn classes(v: &mut ChainVerifier, c: &Couple, env: &attune_proto::Envelope) -> Vec<Class> {
    v.check(env, &c.keys).iter().map(|x| x.class).collect()
}

#[test]
fn genuine_chain_is_ok_and_readable() {
    let c = Couple::new();
    let mut v = ChainVerifier::new(c.roster.clone());
    let mut a = Author::new(&c.a);
    let mut b = Author::new(&c.b);
    for (i, env) in [a.write(&c, "a1"), b.write(&c, "b1"), a.write(&c, "a2")]
        .iter()
        .enumerate()
    {
        let out = v.check(env, &c.keys);
        assert_eq!(out.len(), 1, "envelope {i}");
        assert_eq!(out[0].class, Class::Ok);
        assert!(out[0].opened.is_some());
    }
    assert_eq!(v.head(&c.a.id()).map(|h| h.0), Some(2));
    assert_eq!(v.head(&c.b.id()).map(|h| h.0), Some(1));
}

#[test]
fn forged_by_an_outsider() {
    let c = Couple::new();
    let mut v = ChainVerifier::new(c.roster.clone());
    // A device that is not in the roster (say, the relay's own) writes with the real key.
    let outsider = DeviceIdentity::generate();
    let mut o = Author::new(&outsider);
    let env = o.write(&c, "I am your partner, honest");
    let out = v.check(&env, &c.keys);
    assert_eq!(out[0].class, Class::Forged);
    assert!(out[0].opened.is_none());
}

#[test]
fn forged_by_a_revoked_device() {
    let mut c = Couple::new();
    let a_identity = c.a.clone();
    let a_id = a_identity.id();
    let mut a = Author::new(&a_identity);
    let first = a.write(&c, "before revocation");
    c.append_roster(
        &a_identity,
        RosterChange::Revoke {
            device: a_id,
            last_seq: 1,
        },
    );
    let after = a.write(&c, "after revocation");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &first), vec![Class::Ok]);
    assert_eq!(classes(&mut v, &c, &after), vec![Class::Forged]);
}

#[test]
fn altered_body_header_or_signature() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let env = a.write(&c, "the original words");
    let mut body = env.clone();
    body.body[30] ^= 0x01;
    let mut sig = env.clone();
    sig.signature[5] ^= 0x80;
    let mut header = env.clone();
    header.header.entry = attune_proto::EntryId([7; 16]);
    for bad in [body, sig, header] {
        let mut v = ChainVerifier::new(c.roster.clone());
        let out = v.check(&bad, &c.keys);
        assert_eq!(out[0].class, Class::Altered);
        assert!(out[0].opened.is_none());
    }
}

#[test]
fn altered_impersonation_signed_by_the_partner() {
    // B signs an envelope that claims A as its author.
    let c = Couple::new();
    let key = c.keys.get(&KeyId::Epoch(0)).unwrap();
    let mut header = Author::new(&c.a).next_header(c.space);
    header.author = c.b.id();
    let mut env = seal_envelope(&c.b, header, KeyId::Epoch(0), key, b"pretending").unwrap();
    env.header.author = c.a.id();
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &env), vec![Class::Altered]);
}

#[test]
fn altered_ciphertext_under_a_valid_signature() {
    // The author's own device signs a body whose commitment names the epoch key
    // but whose ciphertext does not decrypt under it.
    let c = Couple::new();
    let key = c.keys.get(&KeyId::Epoch(0)).unwrap();
    let header = Author::new(&c.a).next_header(c.space);
    let mut env = seal_envelope(&c.a, header, KeyId::Epoch(0), key, b"garbage").unwrap();
    let last = env.body.len() - 1;
    env.body[last] ^= 1;
    env.signature = c.a.sign_envelope(&env.header, &env.body);
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &env), vec![Class::Altered]);
}

#[test]
fn sealed_under_a_key_this_device_lacks_is_genuine_but_unread() {
    // Nothing in the clear names the key: an envelope under a key this device
    // does not hold (the partner's private one, an epoch it was not given) is
    // accepted in the chain and simply not opened.
    let c = Couple::new();
    let other = SymmetricKey::generate();
    let header = Author::new(&c.a).next_header(c.space);
    let env = seal_envelope(&c.a, header, KeyId::Epoch(7), &other, b"not for you").unwrap();
    let mut v = ChainVerifier::new(c.roster.clone());
    let out = v.check(&env, &c.keys);
    assert_eq!(out[0].class, Class::Ok);
    assert!(out[0].opened.is_none());
}

#[test]
fn foreign_space() {
    let c = Couple::new();
    let other = Couple::new();
    let mut a = Author::new(&other.a);
    let env = a.write(&other, "from another couple");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &env), vec![Class::ForeignSpace]);
    // Even one of our own devices cannot move an envelope into another space.
    let mut mine = Author::new(&c.a).write(&c, "ours");
    mine.header.space = SpaceId(random16());
    assert_eq!(classes(&mut v, &c, &mine), vec![Class::ForeignSpace]);
}

#[test]
fn replayed() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let e1 = a.write(&c, "once");
    let e2 = a.write(&c, "twice");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &e1), vec![Class::Ok]);
    assert_eq!(classes(&mut v, &c, &e2), vec![Class::Ok]);
    assert_eq!(classes(&mut v, &c, &e1), vec![Class::Replayed]);
    assert_eq!(classes(&mut v, &c, &e2), vec![Class::Replayed]);
}

#[test]
fn gap_from_a_dropped_envelope() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let e1 = a.write(&c, "1");
    let _dropped = a.write(&c, "2");
    let e3 = a.write(&c, "3");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &e1), vec![Class::Ok]);
    let out = v.check(&e3, &c.keys);
    assert_eq!(
        out[0].class,
        Class::Gap {
            expected: 2,
            found: 3
        }
    );
    assert!(out[0].opened.is_none(), "held content is not shown");
    assert_eq!(v.head(&c.a.id()).map(|h| h.0), Some(1));
}

#[test]
fn reordered_then_released() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let e1 = a.write(&c, "1");
    let e2 = a.write(&c, "2");
    let e3 = a.write(&c, "3");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &e1), vec![Class::Ok]);
    assert_eq!(
        classes(&mut v, &c, &e3),
        vec![Class::Gap {
            expected: 2,
            found: 3
        }]
    );
    let out = v.check(&e2, &c.keys);
    assert_eq!(
        out.iter().map(|x| x.class).collect::<Vec<_>>(),
        vec![Class::Reordered, Class::Ok]
    );
    assert_eq!(out[1].envelope, e3);
    assert_eq!(
        out[1].opened.as_ref().and_then(|o| o.item()),
        Some(&b"3"[..])
    );
    assert_eq!(v.head(&c.a.id()).map(|h| h.0), Some(3));
}

#[test]
fn fork_two_envelopes_one_sequence_number() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let e1 = a.write(&c, "1");
    let mut twin = Author::new(&c.a);
    twin.seq = a.seq;
    twin.prev = a.prev;
    let e2 = a.write(&c, "what B was shown");
    let e2_other = twin.write(&c, "what someone else was shown");
    let mut v = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut v, &c, &e1), vec![Class::Ok]);
    assert_eq!(classes(&mut v, &c, &e2), vec![Class::Ok]);
    assert_eq!(classes(&mut v, &c, &e2_other), vec![Class::Fork { seq: 2 }]);
    // A successor of the other branch does not chain to what we accepted.
    let e3_other = twin.write(&c, "more of the other branch");
    assert_eq!(classes(&mut v, &c, &e3_other), vec![Class::Fork { seq: 3 }]);
}

#[test]
fn heads_reveal_withheld_and_forked_history() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    let e1 = a.write(&c, "1");
    let e2 = a.write(&c, "2");
    // B's view: the relay served only e1.
    let mut b_view = ChainVerifier::new(c.roster.clone());
    assert_eq!(classes(&mut b_view, &c, &e1), vec![Class::Ok]);
    // A's own view has both; A's next item carries its heads.
    let mut a_view = ChainVerifier::new(c.roster.clone());
    classes(&mut a_view, &c, &e1);
    classes(&mut a_view, &c, &e2);
    let problems = b_view.check_heads(&a_view.heads());
    assert_eq!(
        problems,
        vec![HeadsProblem::Withheld {
            device: c.a.id(),
            have: 1,
            seen: 2
        }]
    );
    // A fork: B accepted a different envelope at seq 2 than A wrote.
    let mut twin = Author::new(&c.a);
    twin.write(&c, "1");
    let mut forked = Author::new(&c.a);
    forked.seq = 1;
    forked.prev = e1.hash();
    let e2_fork = forked.write(&c, "a different 2");
    classes(&mut b_view, &c, &e2_fork);
    assert_eq!(
        b_view.check_heads(&a_view.heads()),
        vec![HeadsProblem::Fork {
            device: c.a.id(),
            seq: 2
        }]
    );
    assert!(a_view.check_heads(&a_view.heads()).is_empty());
}

#[test]
fn the_partners_private_entries_are_accepted_but_unreadable() {
    // Each member holds a private key under the same key id; neither opens the other's.
    let c = Couple::new();
    let mut a_keys = c.keys.clone();
    a_keys.insert(KeyId::MemberPrivate(0), SymmetricKey::generate());
    a_keys.set_member(c.member_a);
    let mut b_keys = c.keys.clone();
    b_keys.insert(KeyId::MemberPrivate(0), SymmetricKey::generate());
    b_keys.set_member(c.member_b);
    let header = Author::new(&c.a).next_header(c.space);
    let private = seal_envelope(
        &c.a,
        header,
        KeyId::MemberPrivate(0),
        a_keys.get(&KeyId::MemberPrivate(0)).unwrap(),
        b"only for my own devices",
    )
    .unwrap();
    let mut b_view = ChainVerifier::new(c.roster.clone());
    let out = b_view.check(&private, &b_keys);
    assert_eq!(out[0].class, Class::Ok);
    assert!(out[0].opened.is_none(), "the partner cannot read it");
    let mut a_view = ChainVerifier::new(c.roster.clone());
    let out = a_view.check(&private, &a_keys);
    assert_eq!(
        out[0].opened.as_ref().and_then(|o| o.item()),
        Some(&b"only for my own devices"[..])
    );
    assert!(out[0].opened.as_ref().is_some_and(|o| o.is_private()));
}

mod resumed {
    use super::*;
    use attune_proto::Envelope;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Checks `stream` with one verifier, and again with a verifier stopped after
    /// `split` envelopes and resumed from its snapshot, told (as the client's
    /// store does) the hashes it accepted before that an incoming envelope refers
    /// to. Both must classify every envelope alike and end with the same heads.
    fn same_verdicts(stream: &[Envelope], split: usize, c: &Couple) {
        let mut whole = ChainVerifier::new(c.roster.clone());
        let expected: Vec<Vec<Class>> = stream.iter().map(|e| classes(&mut whole, c, e)).collect();

        let mut first = ChainVerifier::new(c.roster.clone());
        let mut accepted: BTreeMap<(attune_proto::DeviceId, u64), attune_proto::Hash32> =
            BTreeMap::new();
        let mut got: Vec<Vec<Class>> = Vec::new();
        let check = |v: &mut ChainVerifier,
                     e: &Envelope,
                     accepted: &mut BTreeMap<_, _>,
                     got: &mut Vec<Vec<Class>>| {
            let out = v.check(e, &c.keys);
            for x in &out {
                if x.class.is_accepted() {
                    accepted.insert(
                        (x.envelope.header.author, x.envelope.header.seq),
                        x.envelope.hash(),
                    );
                }
            }
            got.push(out.iter().map(|x| x.class).collect());
        };
        for e in &stream[..split] {
            check(&mut first, e, &mut accepted, &mut got);
        }
        let mut resumed = ChainVerifier::resume(c.roster.clone(), first.snapshot());
        for e in &stream[split..] {
            let h = e.header;
            if let Some(hash) = accepted.get(&(h.author, h.seq)) {
                resumed.remember(h.author, h.seq, *hash);
            }
            check(&mut resumed, e, &mut accepted, &mut got);
        }
        assert_eq!(got, expected, "split at {split}");
        assert_eq!(resumed.heads(), whole.heads());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn a_resumed_verifier_classifies_like_one_that_never_stopped(
            order in proptest::collection::vec(0usize..9, 1..24),
            split_at in 0usize..24,
        ) {
            let c = Couple::new();
            let mut a = Author::new(&c.a);
            let mut b = Author::new(&c.b);
            // Five of one chain and four of the other, served in any order, with
            // repeats (replays), skips (gaps) and late arrivals (reorders).
            let pool: Vec<Envelope> = (0..5)
                .map(|i| a.write(&c, &format!("a{i}")))
                .chain((0..4).map(|i| b.write(&c, &format!("b{i}"))))
                .collect();
            let stream: Vec<Envelope> = order.iter().map(|&i| pool[i].clone()).collect();
            same_verdicts(&stream, split_at.min(stream.len()), &c);
        }
    }
}

/// Signatures checked for a whole batch on all cores (`verify_all`), then the
/// chain rules in order (`check_signed`), give exactly the verdicts of `check`:
/// for genuine, replayed, reordered, altered and forged envelopes alike.
mod batched {
    use super::*;
    use attune_proto::Envelope;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn signatures_checked_in_a_batch_give_the_same_verdicts(
            order in proptest::collection::vec(0usize..11, 1..200),
        ) {
            let c = Couple::new();
            let mut a = Author::new(&c.a);
            let mut b = Author::new(&c.b);
            let mut pool: Vec<Envelope> = (0..5)
                .map(|i| a.write(&c, &format!("a{i}")))
                .chain((0..4).map(|i| b.write(&c, &format!("b{i}"))))
                .collect();
            // An altered one (a flipped body byte) and one by an outsider.
            let mut altered = pool[1].clone();
            if let Some(x) = altered.body.last_mut() {
                *x ^= 1;
            }
            pool.push(altered);
            let outsider = Couple::new();
            pool.push(Author::new(&outsider.a).write(&outsider, "not a member"));
            let stream: Vec<Envelope> = order.iter().map(|&i| pool[i].clone()).collect();
            let mut one_by_one = ChainVerifier::new(c.roster.clone());
            let expected: Vec<Vec<Class>> =
                stream.iter().map(|e| classes(&mut one_by_one, &c, e)).collect();
            let mut batched = ChainVerifier::new(c.roster.clone());
            let verdicts = batched.verify_all(&stream);
            prop_assert_eq!(verdicts.len(), stream.len());
            let got: Vec<Vec<Class>> = stream
                .iter()
                .zip(verdicts)
                .map(|(e, v)| batched.check_signed(e, v, &c.keys).iter().map(|x| x.class).collect())
                .collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(batched.heads(), one_by_one.heads());
        }
    }
}
