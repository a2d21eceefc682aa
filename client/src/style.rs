//! Terminal colours that respect `NO_COLOR` and only appear on a terminal.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn stdout() -> Self {
        Self {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn me(&self, t: &str) -> String {
        self.paint("36", t)
    }
    pub fn partner(&self, t: &str) -> String {
        self.paint("35", t)
    }
    pub fn warn(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn bad(&self, t: &str) -> String {
        self.paint("31;1", t)
    }
}

impl Style {
    /// No colours, whatever the terminal (files, Markdown).
    pub fn plain() -> Self {
        Self { on: false }
    }
}
