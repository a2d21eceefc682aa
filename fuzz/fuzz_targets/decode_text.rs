//! The text decoders of attune-proto (hex ids in paths and headers, unpadded
//! base64url in JSON bodies and the signature header) never panic, and what they
//! accept names exactly the bytes they return.
#![no_main]

use attune_proto::{api, DeviceId, EntryId, Hash32, MemberId, SpaceId};
use libfuzzer_sys::fuzz_target;

/// Hex parsing accepts upper and lower case, so compare case-insensitively.
fn check_hex(what: &str, input: &str, parsed: Option<String>) {
    if let Some(hex) = parsed {
        assert!(
            hex.eq_ignore_ascii_case(input),
            "{what}: parsed hex does not name the input"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_hex("SpaceId", s, SpaceId::from_hex(s).ok().map(|v| v.to_hex()));
    check_hex(
        "DeviceId",
        s,
        DeviceId::from_hex(s).ok().map(|v| v.to_hex()),
    );
    check_hex("EntryId", s, EntryId::from_hex(s).ok().map(|v| v.to_hex()));
    check_hex(
        "MemberId",
        s,
        MemberId::from_hex(s).ok().map(|v| v.to_hex()),
    );
    check_hex("Hash32", s, Hash32::from_hex(s).ok().map(|v| v.to_hex()));
    if let Some(bytes) = api::from_b64(s) {
        assert!(
            api::b64(&bytes) == s,
            "base64url: accepted a non-canonical encoding"
        );
    }
});
