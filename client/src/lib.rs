//! attune: the command-line front-end over the engine in `attune-core`. The
//! binary is a thin `main.rs` over this library: [`args`] is the grammar,
//! [`commands`] runs each command on a profile the engine opens, [`prompts`]
//! asks the person at the terminal, and [`render`] and [`style`] draw the answers.
//! Only this crate prints, prompts or exits.

/// `println!` that ends the process quietly when stdout is closed (`attune feed | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

pub mod args;
pub mod coach;
pub mod commands;
pub mod common;
#[cfg(feature = "demo")]
pub mod demo;
pub mod editor;
pub mod export;
pub mod filters;
pub mod help;
pub mod notify;
pub mod pager;
pub mod progress;
pub mod prompts;
pub mod render;
pub mod style;
pub mod timespec;
pub mod words;

/// The client's version string, as printed by `attune --version`.
pub const VERSION: &str = attune_core::VERSION;
