//! attune-relay: the blind relay. It links attune-proto (formats and signature
//! verification) and nothing that can decrypt. The HTTP service arrives with the
//! relay issue; for now the library exposes its version.

/// The relay's version string, as printed by `attune-relay --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire-format version this relay speaks.
pub const PROTOCOL_VERSION: u8 = attune_proto::VERSION;
