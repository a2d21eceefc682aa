//! SPAKE2 pairing: the same code confirms the same key on both sides; a wrong code
//! or a tampered message fails confirmation on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_crypto::pairing::{AwaitingConfirm, AwaitingPake};
use attune_crypto::{Pairing, PairingCode, PairingError, PairingSession};
use attune_proto::{PairingMessage, PairingPayload, Role};

/// Runs both sides, letting `tamper` rewrite each message as a hostile relay would.
fn run(
    code_a: &PairingCode,
    code_b: &PairingCode,
    tamper: impl Fn(&mut PairingMessage),
) -> (
    Result<PairingSession, PairingError>,
    Result<PairingSession, PairingError>,
) {
    let relay = |m: PairingMessage| {
        let mut m = PairingMessage::decode(&m.encode()).unwrap();
        tamper(&mut m);
        m
    };
    let (a, pake_a): (AwaitingPake, _) = Pairing::start(Role::Inviter, code_a);
    let (b, pake_b) = Pairing::start(Role::Joiner, code_b);
    let (a, confirm_a): (AwaitingConfirm, _) = a.receive_pake(&relay(pake_b)).unwrap();
    let (b, confirm_b) = b.receive_pake(&relay(pake_a)).unwrap();
    (
        a.receive_confirm(&relay(confirm_b)),
        b.receive_confirm(&relay(confirm_a)),
    )
}

#[test]
fn same_code_confirms_the_same_key() {
    let code = PairingCode::generate(4711);
    let joiner_code = PairingCode::parse(&format!("  {} ", code.reveal().to_uppercase())).unwrap();
    assert_eq!(joiner_code, code);
    let (a, b) = run(&code, &joiner_code, |_| {});
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    // The confirmed keys are the same: each side opens what the other sealed.
    let m1 = a.seal(b"space id, roster, epoch key").unwrap();
    assert_eq!(
        b.open(&m1).unwrap().as_slice(),
        b"space id, roster, epoch key"
    );
    let m2 = b.seal(b"joiner device keys").unwrap();
    assert_eq!(a.open(&m2).unwrap().as_slice(), b"joiner device keys");
    // Replaying or reflecting a sealed message fails.
    assert_eq!(b.open(&m1), Err(PairingError::Decrypt));
    assert!(a.open(&m1).is_err());
}

#[test]
fn wrong_code_fails_on_both_sides() {
    let code = PairingCode::generate(12);
    let mut wrong = PairingCode::generate(12);
    while wrong == code {
        wrong = PairingCode::generate(12);
    }
    let (a, b) = run(&code, &wrong, |_| {});
    assert_eq!(a.err(), Some(PairingError::ConfirmationFailed));
    assert_eq!(b.err(), Some(PairingError::ConfirmationFailed));
}

#[test]
fn tampered_pake_message_fails_on_both_sides() {
    let code = PairingCode::generate(3);
    for byte in [0usize, 1, 7, 20, 32] {
        for from in [Role::Inviter, Role::Joiner] {
            let (a, b) = run(&code, &code, |m| {
                if let (PairingPayload::Pake(p), true) = (&mut m.payload, m.from == from) {
                    p[byte] ^= 0x01;
                }
            });
            assert_eq!(
                a.err(),
                Some(PairingError::ConfirmationFailed),
                "inviter, byte {byte} from {from:?}"
            );
            assert_eq!(
                b.err(),
                Some(PairingError::ConfirmationFailed),
                "joiner, byte {byte} from {from:?}"
            );
        }
    }
}

#[test]
fn tampered_confirmation_fails() {
    let code = PairingCode::generate(3);
    let (a, b) = run(&code, &code, |m| {
        if let PairingPayload::Confirm(c) = &mut m.payload {
            c[0] ^= 1;
        }
    });
    assert_eq!(a.err(), Some(PairingError::ConfirmationFailed));
    assert_eq!(b.err(), Some(PairingError::ConfirmationFailed));
}

#[test]
fn tampered_sealed_message_fails() {
    let code = PairingCode::generate(99);
    let (a, b) = run(&code, &code, |_| {});
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    let mut m = a.seal(b"roster").unwrap();
    if let PairingPayload::Sealed { ciphertext, .. } = &mut m.payload {
        ciphertext[0] ^= 1;
    }
    assert_eq!(b.open(&m), Err(PairingError::Decrypt));
}

#[test]
fn messages_in_the_wrong_role_or_order_are_refused() {
    let code = PairingCode::generate(5);
    let (a, pake_a) = Pairing::start(Role::Inviter, &code);
    // Its own message reflected back.
    assert!(matches!(
        a.receive_pake(&pake_a),
        Err(PairingError::UnexpectedMessage { .. })
    ));
}

#[test]
fn codes_parse_strictly() {
    for bad in [
        "",
        "12",
        "12-otter",
        "x-otter-maple",
        "12-otter-notaword",
        "12-otter-maple-fox",
    ] {
        assert_eq!(PairingCode::parse(bad), Err(PairingError::BadCode), "{bad}");
    }
    let c = PairingCode::parse("12 Otter maple").unwrap();
    assert_eq!(c.reveal(), "12-otter-maple");
    assert!(!format!("{c:?}").contains("otter"), "Debug hides the words");
}
