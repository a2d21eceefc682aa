//! The canonical binary encoding shared by every signed or authenticated structure:
//! big-endian fixed-width integers, fixed-size byte arrays written as-is, and
//! variable-length byte strings prefixed by a big-endian `u32` length.
//!
//! One value has exactly one encoding, so decoders are strict: they reject trailing
//! bytes, truncation, out-of-range lengths and unknown tags instead of guessing.

use thiserror::Error;

/// Why a byte string is not a valid canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ended early: needed {needed} more bytes for {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("{count} unexpected trailing bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("unsupported {what} version {found} (this build speaks version {supported})")]
    UnknownVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{what} length {len} is outside the allowed range {min}..={max}")]
    BadLength {
        what: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("non-canonical {what}: {why}")]
    NonCanonical {
        what: &'static str,
        why: &'static str,
    },
}

/// Appends canonical fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A fixed-size field: written without a length.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// A variable-size field: a `u32` big-endian length, then the bytes.
    ///
    /// Callers bound their fields far below 4 GiB; a longer one is a programming
    /// error, so the length saturates rather than wrapping (and decoding rejects it).
    pub fn var(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from a byte slice, never panicking on bad input.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A variable-size field whose length must lie in `min..=max`.
    pub fn var(
        &mut self,
        what: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len < min || len > max {
            return Err(DecodeError::BadLength {
                what,
                len,
                min,
                max,
            });
        }
        self.take(len, what)
    }

    /// Everything that is left, whose length must lie in `min..=max`.
    pub fn rest(
        &mut self,
        what: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.rest.len();
        if len < min || len > max {
            return Err(DecodeError::BadLength {
                what,
                len,
                min,
                max,
            });
        }
        self.take(len, what)
    }

    /// Succeeds only if the input has been consumed exactly.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.rest.len(),
            })
        }
    }
}

/// Reads the leading version byte of a structure and checks it is ours.
pub(crate) fn expect_version(r: &mut Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    let found = r.u8(what)?;
    if found != crate::VERSION {
        return Err(DecodeError::UnknownVersion {
            what,
            found,
            supported: crate::VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = Writer::new();
        w.u8(7)
            .u32(0x0102_0304)
            .u64(9)
            .i64(-2)
            .fixed(&[1, 2])
            .var(b"abc");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a"), Ok(7));
        assert_eq!(r.u32("b"), Ok(0x0102_0304));
        assert_eq!(r.u64("c"), Ok(9));
        assert_eq!(r.i64("d"), Ok(-2));
        assert_eq!(r.array::<2>("e"), Ok([1, 2]));
        assert_eq!(r.var("f", 0, 3), Ok(&b"abc"[..]));
        assert_eq!(r.finish("x"), Ok(()));

        let mut r = Reader::new(&[0, 0, 0, 4, 1]);
        assert!(matches!(
            r.var("f", 0, 3),
            Err(DecodeError::BadLength { len: 4, .. })
        ));
        let mut r = Reader::new(&[0, 0, 0, 2, 1]);
        assert!(matches!(
            r.var("f", 0, 3),
            Err(DecodeError::Truncated { needed: 1, .. })
        ));
        let r = Reader::new(&[1]);
        assert!(matches!(
            r.finish("x"),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
    }
}
