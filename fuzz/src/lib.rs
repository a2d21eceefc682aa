//! Shared pieces of the fuzz targets: the canonical-encoding check every decoder
//! target makes, and fixed device identities for the targets that sign.

use attune_crypto::DeviceIdentity;

/// Whatever a decoder accepts must be the one canonical encoding of the value it
/// returned: `encode(decode(x)) == x`, byte for byte. Panics (a fuzzer finding)
/// otherwise.
pub fn assert_canonical(what: &str, input: &[u8], reencoded: Option<Vec<u8>>) {
    if let Some(out) = reencoded {
        assert!(
            out == input,
            "{what}: accepted a non-canonical encoding ({} bytes in, {} bytes re-encoded)",
            input.len(),
            out.len()
        );
    }
}

/// Device `i` of a fixed set: the same keys on every run, so a crash reproduces.
pub fn device(i: u8) -> DeviceIdentity {
    DeviceIdentity::from_secret_bytes(&[0xA0 ^ i; 32], &[0xB0 ^ i; 32])
}
