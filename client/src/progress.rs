//! Progress on the terminal for long syncs: a spinner on stderr, only when stderr
//! is a terminal and the sync turns out to be long (more than one page).

use indicatif::{HumanCount, ProgressBar, ProgressStyle};

use attune_core::ui::Progress;

/// A spinner that appears once more than one page is on its way.
#[derive(Debug, Default)]
pub struct Spinner {
    bar: Option<ProgressBar>,
    enabled: bool,
    verified: u64,
}

impl Spinner {
    /// A spinner if stderr is a terminal, else nothing.
    pub fn on_stderr() -> Self {
        use std::io::IsTerminal;
        Self {
            bar: None,
            enabled: std::io::stderr().is_terminal(),
            verified: 0,
        }
    }

    /// Items verified so far and the rate received, in whole items a second
    /// (indicatif's own rate prints three decimals).
    fn show(&self) {
        if let Some(b) = &self.bar {
            let secs = b.elapsed().as_secs_f64().max(0.001);
            let rate = (b.position() as f64 / secs).round() as u64;
            let verified = if self.verified > 0 {
                format!(", {} verified", HumanCount(self.verified))
            } else {
                String::new()
            };
            b.set_message(format!("{verified} ({}/s)", HumanCount(rate)));
        }
    }
}

impl Progress for Spinner {
    fn advance(&mut self, done: u64, more: bool) {
        if more && self.bar.is_none() && self.enabled {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} received {human_pos} items{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
        self.show();
    }

    fn verified(&mut self, done: u64) {
        self.verified = done;
        self.show();
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
