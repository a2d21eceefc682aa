//! Terminal colours that respect `NO_COLOR` and only appear on a terminal, and
//! how untrusted text is made inert for the medium (terminal or Markdown).
//! attune's own colours are trusted; text it did not write goes through
//! [`Style::text`] or [`Style::name`] (see `inert`).

use std::io::IsTerminal;

use attune_core::inert;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
    markdown: bool,
}

impl Style {
    pub fn stdout() -> Self {
        Self {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            markdown: false,
        }
    }

    /// No colours, for Markdown: untrusted text is escaped for Markdown, on one line.
    pub fn markdown() -> Self {
        Self {
            on: false,
            markdown: true,
        }
    }

    /// True when colours are on (stdout is a terminal and NO_COLOR is unset).
    pub fn is_on(&self) -> bool {
        self.on
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
        self.paint("36", &self.name(t))
    }
    pub fn partner(&self, t: &str) -> String {
        self.paint("35", &self.name(t))
    }
    pub fn warn(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn bad(&self, t: &str) -> String {
        self.paint("31;1", t)
    }

    /// Untrusted free text (an item's content): inert, newlines kept on a
    /// terminal (continuation lines marked), escaped in Markdown.
    pub fn text(&self, t: &str) -> String {
        if self.markdown {
            inert::markdown_inline(t)
        } else {
            inert::text(t).into_owned()
        }
    }

    /// An untrusted name or label: inert, on one line.
    pub fn name(&self, t: &str) -> String {
        if self.markdown {
            inert::markdown_inline(t)
        } else {
            inert::line(t).into_owned()
        }
    }
}
