//! Flipping any single bit of a sealed envelope makes opening fail with a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod fixture;
}

use attune_crypto::{open_envelope, OpenError};
use attune_proto::Envelope;
use proptest::prelude::*;
use support::fixture::{Author, Couple};

/// Flips bit `bit` of the encoded envelope and tries to decode and open it.
fn open_flipped(c: &Couple, encoded: &[u8], bit: usize) -> Result<(), OpenError> {
    let mut bytes = encoded.to_vec();
    bytes[bit / 8] ^= 1 << (bit % 8);
    let env = Envelope::decode(&bytes)?;
    open_envelope(&env, &c.roster, &c.keys).map(|_| ())
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let c = Couple::new();
    let mut a = Author::new(&c.a);
    a.write(&c, "first");
    let env = a.write(&c, "a short check-in");
    let encoded = env.encode();
    assert_eq!(
        open_envelope(&env, &c.roster, &c.keys).unwrap().item(),
        Some(&b"a short check-in"[..])
    );
    let mut seen = std::collections::BTreeMap::new();
    for bit in 0..encoded.len() * 8 {
        match open_flipped(&c, &encoded, bit) {
            Ok(()) => panic!("flipping bit {bit} still opened"),
            Err(e) => {
                let kind = format!("{e:?}");
                let kind = kind.split('(').next().unwrap_or("").to_string();
                *seen.entry(kind).or_insert(0usize) += 1;
            }
        }
    }
    // Every region is covered: header fields, body and signature fail differently.
    for kind in ["Malformed", "ForeignSpace", "UnknownAuthor", "BadSignature"] {
        assert!(seen.contains_key(kind), "no flip gave {kind}: {seen:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_content_random_bit(text in proptest::collection::vec(any::<u8>(), 0..3000), pick in any::<u64>()) {
        let c = Couple::new();
        let a = Author::new(&c.a);
        let key = c.keys.get(&attune_proto::KeyId::Epoch(0)).unwrap();
        let header = a.next_header(c.space);
        let env = attune_crypto::seal_envelope(&c.a, header, attune_proto::KeyId::Epoch(0), key, &text).unwrap();
        let encoded = env.encode();
        let opened = open_envelope(&env, &c.roster, &c.keys).unwrap();
        prop_assert_eq!(opened.item(), Some(&text[..]));
        let bit = (pick % (encoded.len() as u64 * 8)) as usize;
        prop_assert!(open_flipped(&c, &encoded, bit).is_err());
    }
}

/// Found by the `open_envelope` fuzz target: sealing signed headers that no reader
/// decodes (sequence 0, or a previous hash that disagrees with the sequence
/// number). Such an envelope could only ever be rejected downstream; the author
/// should hear about it before signing.
#[test]
fn sealing_refuses_headers_that_break_the_chain_rules() {
    let c = Couple::new();
    let a = Author::new(&c.a);
    let key = c.keys.get(&attune_proto::KeyId::Epoch(0)).unwrap();
    let good = a.next_header(c.space);
    let zero_seq = attune_proto::EnvelopeHeader { seq: 0, ..good };
    let first_with_prev = attune_proto::EnvelopeHeader {
        prev: attune_proto::Hash32([7; 32]),
        ..good
    };
    let later_without_prev = attune_proto::EnvelopeHeader { seq: 2, ..good };
    for bad in [zero_seq, first_with_prev, later_without_prev] {
        let err = attune_crypto::seal_envelope(&c.a, bad, attune_proto::KeyId::Epoch(0), key, b"x")
            .unwrap_err();
        assert!(
            matches!(err, attune_crypto::SealError::InvalidHeader(_)),
            "{err:?}"
        );
    }
    assert!(
        attune_crypto::seal_envelope(&c.a, good, attune_proto::KeyId::Epoch(0), key, b"x").is_ok()
    );
}
