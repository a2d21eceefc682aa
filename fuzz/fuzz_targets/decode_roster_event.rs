//! `SignedRosterEvent::decode` never panics, and accepts only canonical encodings.
#![no_main]

attune_fuzz::canonical_decode_target!(SignedRosterEvent);
