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

/// The one wire-format version this build speaks. Every encoded structure starts with it.
pub const VERSION: u8 = 1;

pub use answer::{AnswerContext, KeyWrap, SealedAnswer};
pub use codec::DecodeError;
pub use envelope::{Envelope, EnvelopeHeader, KeyId};
pub use held::{HeldHeader, HeldReveal};
pub use ids::{DeviceId, DevicePublic, EntryId, Hash32, MemberId, SpaceId};
pub use pairing::{PairingMessage, PairingPayload, Role};
pub use request::RequestToSign;
pub use roster::{Roster, RosterChange, RosterError, RosterEvent, SignedRosterEvent};
pub use sig::SignatureError;
