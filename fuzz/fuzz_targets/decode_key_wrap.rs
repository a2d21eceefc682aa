//! `KeyWrap::decode` and `KeyWrap::decode_list` never panic, and accept only
//! canonical encodings. The first byte picks the decoder.
#![no_main]

use attune_fuzz::assert_canonical;
use attune_proto::KeyWrap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        let reencoded = KeyWrap::decode(rest).ok().map(|v| v.encode());
        assert_canonical("KeyWrap", rest, reencoded);
    } else {
        let reencoded = KeyWrap::decode_list(rest)
            .ok()
            .map(|v| KeyWrap::encode_list(&v));
        assert_canonical("KeyWrap list", rest, reencoded);
    }
});
