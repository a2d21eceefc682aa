//! attune: the command-line client. The commands arrive with the CLI issue; for now
//! the library exposes its version.

/// The client's version string, as printed by `attune --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire-format version this client speaks.
pub const PROTOCOL_VERSION: u8 = attune_proto::VERSION;
