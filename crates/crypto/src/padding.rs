//! Padding plaintext to size buckets, so a reader without the key learns only a
//! coarse size.
//!
//! `padded = len u32 BE || plaintext || zeros`, and its total length is a bucket.
//! Two bucket ladders (PROTOCOL.md §4, §9):
//! - envelopes (protocol 2), what the relay sees: 2 KiB, then ×4 up to 512 KiB,
//!   then 1 MiB. Every common item (check-ins, sealed answers, journal entries of
//!   a page or two, exercise steps, device changes) fits the first, so the relay
//!   sees one size for all of them.
//! - fine: a power of two from 256 B to 64 KiB, then a multiple of 64 KiB up to
//!   1 MiB. For sealed answers (inside an envelope: the partner must not learn
//!   much of an answer's length before the reveal, and they must stay small
//!   enough for their envelope's first bucket) and for version 1 envelopes.

use thiserror::Error;
use zeroize::Zeroizing;

/// The smallest fine bucket.
pub const MIN_BUCKET: usize = 256;
pub const LARGE_STEP: usize = 64 * 1024;
pub const MAX_PADDED: usize = 1 << 20;
/// The most plaintext one envelope can carry.
pub const MAX_PLAINTEXT: usize = MAX_PADDED - 4;
/// The envelope buckets of protocol 2.
pub const ENVELOPE_BUCKETS: [usize; 6] = [
    2 * 1024,
    8 * 1024,
    32 * 1024,
    128 * 1024,
    512 * 1024,
    MAX_PADDED,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PaddingError {
    #[error("the content is {len} bytes; at most {MAX_PLAINTEXT} fit in one item")]
    TooLarge { len: usize },
    #[error("the padded content is malformed")]
    Malformed,
}

/// Which ladder of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Protocol 2 envelopes: few, coarse buckets.
    Envelope,
    /// Sealed answers and version 1 envelopes.
    Fine,
}

fn needed(len: usize) -> Result<usize, PaddingError> {
    len.checked_add(4)
        .filter(|n| *n <= MAX_PADDED)
        .ok_or(PaddingError::TooLarge { len })
}

/// The bucket a plaintext of `len` bytes is padded to.
pub fn bucket_for(ladder: Buckets, len: usize) -> Result<usize, PaddingError> {
    let needed = needed(len)?;
    Ok(match ladder {
        Buckets::Envelope => ENVELOPE_BUCKETS
            .iter()
            .copied()
            .find(|b| *b >= needed)
            .unwrap_or(MAX_PADDED),
        Buckets::Fine if needed <= LARGE_STEP => needed.next_power_of_two().max(MIN_BUCKET),
        Buckets::Fine => needed.div_ceil(LARGE_STEP) * LARGE_STEP,
    })
}

fn is_bucket(ladder: Buckets, size: usize) -> bool {
    match ladder {
        Buckets::Envelope => ENVELOPE_BUCKETS.contains(&size),
        Buckets::Fine => {
            (MIN_BUCKET..=LARGE_STEP).contains(&size) && size.is_power_of_two()
                || (LARGE_STEP..=MAX_PADDED).contains(&size) && size.is_multiple_of(LARGE_STEP)
        }
    }
}

pub fn pad(ladder: Buckets, plaintext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PaddingError> {
    let total = bucket_for(ladder, plaintext.len())?;
    let len = u32::try_from(plaintext.len()).map_err(|_| PaddingError::TooLarge {
        len: plaintext.len(),
    })?;
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(total, 0);
    Ok(out)
}

/// Strict inverse of [`pad`]: the size must be a bucket, the length must fit and be
/// the smallest bucket's, and the padding must be zeros.
pub fn unpad(ladder: Buckets, padded: &[u8]) -> Result<Zeroizing<Vec<u8>>, PaddingError> {
    if !is_bucket(ladder, padded.len()) {
        return Err(PaddingError::Malformed);
    }
    let (len_bytes, rest) = padded.split_at(4);
    let mut len_arr = [0u8; 4];
    len_arr.copy_from_slice(len_bytes);
    let len = u32::from_be_bytes(len_arr) as usize;
    if len > rest.len() || bucket_for(ladder, len) != Ok(padded.len()) {
        return Err(PaddingError::Malformed);
    }
    let (content, zeros) = rest.split_at(len);
    if zeros.iter().any(|b| *b != 0) {
        return Err(PaddingError::Malformed);
    }
    Ok(Zeroizing::new(content.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Buckets::{Envelope, Fine};

    #[test]
    fn fine_buckets() {
        assert_eq!(bucket_for(Fine, 0), Ok(256));
        assert_eq!(bucket_for(Fine, 252), Ok(256));
        assert_eq!(bucket_for(Fine, 253), Ok(512));
        assert_eq!(bucket_for(Fine, 65_532), Ok(65_536));
        assert_eq!(bucket_for(Fine, 65_533), Ok(131_072));
        assert_eq!(bucket_for(Fine, MAX_PLAINTEXT), Ok(MAX_PADDED));
        assert!(bucket_for(Fine, MAX_PLAINTEXT + 1).is_err());
    }

    #[test]
    fn envelope_buckets() {
        assert_eq!(bucket_for(Envelope, 0), Ok(2048));
        assert_eq!(bucket_for(Envelope, 2044), Ok(2048));
        assert_eq!(bucket_for(Envelope, 2045), Ok(8192));
        assert_eq!(bucket_for(Envelope, 600_000), Ok(MAX_PADDED));
        assert_eq!(bucket_for(Envelope, MAX_PLAINTEXT), Ok(MAX_PADDED));
        assert!(bucket_for(Envelope, MAX_PLAINTEXT + 1).is_err());
        // A fine bucket is not an envelope bucket, and the reverse.
        assert!(unpad(Envelope, &pad(Fine, b"hi").expect("pads")).is_err());
        assert!(unpad(Fine, &pad(Envelope, &[1; 3000]).expect("pads")).is_err());
    }

    #[test]
    fn round_trip_and_rejects() {
        for ladder in [Fine, Envelope] {
            for len in [0usize, 1, 252, 253, 1000, 2045, 70_000] {
                let data = vec![0xA5u8; len];
                let padded = pad(ladder, &data).expect("pads");
                assert_eq!(Ok(padded.len()), bucket_for(ladder, len));
                assert_eq!(unpad(ladder, &padded).as_deref(), Ok(&data));
            }
            let mut padded = pad(ladder, b"hi").expect("pads");
            padded[100] = 1;
            assert_eq!(unpad(ladder, &padded), Err(PaddingError::Malformed));
        }
        // A length that would have fitted a smaller bucket is not canonical.
        let mut big = vec![0u8; 512];
        big[3] = 2;
        assert_eq!(unpad(Fine, &big), Err(PaddingError::Malformed));
        let mut big = vec![0u8; 8192];
        big[3] = 2;
        assert_eq!(unpad(Envelope, &big), Err(PaddingError::Malformed));
        assert_eq!(unpad(Fine, &[0u8; 255]), Err(PaddingError::Malformed));
    }
}
