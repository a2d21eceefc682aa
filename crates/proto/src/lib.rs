//! attune-proto: the wire formats of attune and the public-key side of its
//! signatures. It holds no secret and does no I/O, so both the relay and the
//! client can link it; PROTOCOL.md documents every layout byte by byte.

pub mod answer;
pub mod api;
pub mod codec;
pub mod envelope;
pub mod held;
pub mod ids;
pub mod labels;
pub mod pairing;
pub mod request;
pub mod roster;
pub mod sig;

/// The version byte of the structures whose layout did not change in protocol 2
/// (roster events, requests, key wraps, sealed answers, keystores, pairing).
pub const VERSION: u8 = 1;

/// The protocol this build speaks: every request to the relay says it
/// (`x-attune-protocol`), and the relay refuses any other (PROTOCOL.md §13).
pub const PROTOCOL: u8 = 2;

pub use answer::{AnswerContext, KeyWrap, SealedAnswer};
pub use codec::DecodeError;
pub use envelope::{Envelope, EnvelopeHeader, KeyId, ENVELOPE_VERSION};
pub use held::{HeldHeader, HeldReveal, Hold, Released};
pub use ids::{DeviceId, DevicePublic, EntryId, Hash32, MemberId, SpaceId};
pub use pairing::{PairingMessage, PairingPayload, Role};
pub use request::RequestToSign;
pub use roster::{Roster, RosterChange, RosterError, RosterEvent, SignedRosterEvent};
pub use sig::{SignatureError, Verifier};
