//! Padding plaintext to size buckets, so the relay learns only a coarse size.
//!
//! `padded = len u32 BE || plaintext || zeros`, and its total length is a bucket:
//! a power of two from 256 B to 64 KiB, then a multiple of 64 KiB up to 1 MiB.

use thiserror::Error;
use zeroize::Zeroizing;

pub const MIN_BUCKET: usize = 256;
pub const LARGE_STEP: usize = 64 * 1024;
pub const MAX_PADDED: usize = 1 << 20;
/// The most plaintext one envelope can carry.
pub const MAX_PLAINTEXT: usize = MAX_PADDED - 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PaddingError {
    #[error("the content is {len} bytes; at most {MAX_PLAINTEXT} fit in one item")]
    TooLarge { len: usize },
    #[error("the padded content is malformed")]
    Malformed,
}

/// The bucket a plaintext of `len` bytes is padded to.
pub fn bucket_for(len: usize) -> Result<usize, PaddingError> {
    let needed = len
        .checked_add(4)
        .filter(|n| *n <= MAX_PADDED)
        .ok_or(PaddingError::TooLarge { len })?;
    Ok(if needed <= LARGE_STEP {
        needed.next_power_of_two().max(MIN_BUCKET)
    } else {
        needed.div_ceil(LARGE_STEP) * LARGE_STEP
    })
}

fn is_bucket(size: usize) -> bool {
    (MIN_BUCKET..=LARGE_STEP).contains(&size) && size.is_power_of_two()
        || (LARGE_STEP..=MAX_PADDED).contains(&size) && size.is_multiple_of(LARGE_STEP)
}

pub fn pad(plaintext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PaddingError> {
    let total = bucket_for(plaintext.len())?;
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
pub fn unpad(padded: &[u8]) -> Result<Zeroizing<Vec<u8>>, PaddingError> {
    if !is_bucket(padded.len()) {
        return Err(PaddingError::Malformed);
    }
    let (len_bytes, rest) = padded.split_at(4);
    let mut len_arr = [0u8; 4];
    len_arr.copy_from_slice(len_bytes);
    let len = u32::from_be_bytes(len_arr) as usize;
    if len > rest.len() || bucket_for(len) != Ok(padded.len()) {
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

    #[test]
    fn buckets() {
        assert_eq!(bucket_for(0), Ok(256));
        assert_eq!(bucket_for(252), Ok(256));
        assert_eq!(bucket_for(253), Ok(512));
        assert_eq!(bucket_for(65_532), Ok(65_536));
        assert_eq!(bucket_for(65_533), Ok(131_072));
        assert_eq!(bucket_for(MAX_PLAINTEXT), Ok(MAX_PADDED));
        assert!(bucket_for(MAX_PLAINTEXT + 1).is_err());
    }

    #[test]
    fn round_trip_and_rejects() {
        for len in [0usize, 1, 252, 253, 1000, 70_000] {
            let data = vec![0xA5u8; len];
            let padded = pad(&data).expect("pads");
            assert_eq!(Ok(padded.len()), bucket_for(len));
            assert_eq!(unpad(&padded).as_deref(), Ok(&data));
        }
        let mut padded = pad(b"hi").expect("pads");
        padded[100] = 1;
        assert_eq!(unpad(&padded), Err(PaddingError::Malformed));
        // A length that would have fitted a smaller bucket is not canonical.
        let mut big = vec![0u8; 512];
        big[3] = 2;
        assert_eq!(unpad(&big), Err(PaddingError::Malformed));
        assert_eq!(unpad(&[0u8; 255]), Err(PaddingError::Malformed));
    }
}
