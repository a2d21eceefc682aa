//! Progress on the terminal for long syncs: a spinner on stderr, only when stderr
//! is a terminal and the sync turns out to be long (more than one page).

use indicatif::{ProgressBar, ProgressStyle};

use attune_core::ui::Progress;

/// A spinner that appears once more than one page is on its way.
#[derive(Debug, Default)]
pub struct Spinner {
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Spinner {
    /// A spinner if stderr is a terminal, else nothing.
    pub fn on_stderr() -> Self {
        use std::io::IsTerminal;
        Self {
            bar: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Spinner {
    fn advance(&mut self, done: u64, more: bool) {
        if more && self.bar.is_none() && self.enabled {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} received {human_pos} items ({per_sec}){msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
    }

    fn verified(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!(", {} verified", indicatif::HumanCount(done)));
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
