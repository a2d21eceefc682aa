//! attune: the command-line client. Today it holds the relay client; the local
//! store, sync engine and commands arrive with the CLI issue.

pub mod relay;

/// The client's version string, as printed by `attune --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire-format version this client speaks.
pub const PROTOCOL_VERSION: u8 = attune_proto::VERSION;
