//! attune: the command-line client. The binary is a thin `main.rs` over this
//! library: [`cli`] parses and runs commands on a [`profile::Profile`] (keystore +
//! local SQLite), which seals items into the outbox, [`sync`]s through the
//! [`relay`] client, and verifies everything it reads.

/// `println!` that ends the process quietly when stdout is closed (`attune feed | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

pub mod cli;
pub mod db;
pub mod demo;
pub mod exercises;
pub mod inert;
pub mod insights;
pub mod insights_cmd;
pub mod item;
pub mod pair;
pub mod practice;
pub mod practice_cmd;
pub mod profile;
pub mod relay;
pub mod render;
pub mod report;
pub mod style;
pub mod sync;
pub mod transport;
pub mod vocab;

/// The client's version string, as printed by `attune --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire-format version this client speaks.
pub const PROTOCOL_VERSION: u8 = attune_proto::VERSION;
