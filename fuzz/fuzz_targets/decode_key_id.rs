//! `KeyId::decode` never panics, and accepts only canonical encodings.
#![no_main]

use attune_fuzz::assert_canonical;
use attune_proto::KeyId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reencoded = KeyId::decode(data).ok().map(|v| v.encode().to_vec());
    assert_canonical("KeyId", data, reencoded);
});
