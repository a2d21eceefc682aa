//! attune-core: the client engine under every front-end.
//!
//! A [`profile::Profile`] (keystore + local SQLite) seals items into the outbox,
//! [`sync`]s through the [`relay`] client, and verifies everything it reads.
//! [`practice`] and [`insights`] derive the empathy practices and trends from
//! verified items.
//!
//! The engine never prints, prompts, draws progress or exits: it returns typed
//! results and typed errors, and asks its front-end for passphrases and reports
//! progress through the small traits in [`ui`].

pub mod agent;
pub mod challenge;
pub mod coach;
pub mod db;
pub mod device;
pub mod entry;
pub mod erased;
pub mod error;
pub mod evening;
pub mod exercises;
pub mod held;
pub mod import;
pub mod index;
pub mod inert;
pub mod insights;
pub mod item;
pub mod pair;
pub mod practice;
pub mod problems;
pub mod profile;
pub mod query;
pub mod recovery;
pub mod relay;
pub mod report;
pub mod settings;
pub mod store;
pub mod sync;
pub mod ui;
pub mod upgrade;
pub mod vocab;

/// The engine's version string (the CLI's `--version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The protocol this client speaks (PROTOCOL.md).
pub const PROTOCOL_VERSION: u8 = attune_proto::PROTOCOL;
