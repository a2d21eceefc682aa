//! The safety number: digits both partners compare in person to rule out a relay
//! that swapped keys during pairing.

use attune_proto::labels;
use sha2::{Digest, Sha512};

/// Six groups of five digits from `SHA-512(SAFETY_NUMBER || min(a, b) || max(a, b))`,
/// where `a` and `b` are the two members' identity keys. Order-independent, so
/// both partners see the same digits.
pub fn safety_number(a: &[u8; 32], b: &[u8; 32]) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha512::new();
    h.update(labels::SAFETY_NUMBER);
    h.update(lo);
    h.update(hi);
    let digest = h.finalize();
    digest
        .chunks_exact(5)
        .take(6)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_distinct() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let n = safety_number(&a, &b);
        assert_eq!(n, safety_number(&b, &a));
        assert_eq!(n.len(), 6 * 5 + 5);
        assert!(n.chars().all(|c| c.is_ascii_digit() || c == ' '));
        assert_ne!(n, safety_number(&a, &[3u8; 32]));
    }
}
