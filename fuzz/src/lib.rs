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

/// The whole of a decoder target: `decode` never panics, and what it accepts is
/// canonical. Used as `canonical_decode_target!(EnvelopeHeader);` in a
/// `#![no_main]` target file.
#[macro_export]
macro_rules! canonical_decode_target {
    ($ty:ident) => {
        $crate::libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let reencoded = attune_proto::$ty::decode(data)
                .ok()
                .map(|v| v.encode().to_vec());
            $crate::assert_canonical(stringify!($ty), data, reencoded);
        });
    };
}

pub use libfuzzer_sys;
