//! The coach: help that is computed on this device from what the member is
//! writing or has verified, and never leaves it. No I/O here: front-ends hand
//! in text and show what comes back; nothing the coach computes is stored in an
//! item or sent to the relay.

pub mod picker;
pub mod reflect;
pub mod tone;

pub use tone::{check, Signal, Suggestion, Tone, Verdict};
