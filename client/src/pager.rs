//! Long output on a terminal goes through `$PAGER` (default `less -R`, with
//! `LESS=FRX` unless `LESS` is set): only when standard output is a terminal
//! and the text is taller than the screen. Pipes, files and `--json` never page.
//! Also: cutting one long rendered item to a few lines for a listing.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

/// Prints `text` (which ends without a newline), through the pager when it
/// does not fit on the terminal's screen.
pub fn print(text: &str) {
    if text.is_empty() {
        return;
    }
    if std::io::stdout().is_terminal() && taller_than_screen(text) {
        if let Some(command) = pager_command() {
            if page(&command, text) {
                return;
            }
        }
    }
    outln!("{text}");
}

/// True if `text` needs more rows than the terminal has (long lines wrap).
fn taller_than_screen(text: &str) -> bool {
    let Some((rows, cols)) = dialoguer::console::Term::stdout().size_checked() else {
        return false;
    };
    let (rows, cols) = (usize::from(rows), usize::from(cols.max(1)));
    let mut needed = 0usize;
    for line in text.lines() {
        let width = dialoguer::console::measure_text_width(line);
        needed += width.div_ceil(cols).max(1);
        // One row is left for the shell's prompt.
        if needed >= rows {
            return true;
        }
    }
    false
}

/// The pager's command line: `$PAGER` split like a shell, `less -R` if unset;
/// none if `$PAGER` is empty or `cat` (paging off) or not a command line.
pub fn pager_command() -> Option<Vec<String>> {
    match std::env::var("PAGER") {
        Ok(p) if p.trim().is_empty() || p.trim() == "cat" => None,
        Ok(p) => crate::editor::parse_command_line(&p).ok(),
        Err(_) => Some(vec!["less".into(), "-R".into()]),
    }
}

/// Runs the pager on `text`; false if it could not be started (the caller
/// prints instead).
fn page(command: &[String], text: &str) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        // Quit if it fits after all, keep colours, leave the text on screen.
        cmd.env("LESS", "FRX");
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager that quits early closes the pipe: that is not an error.
        let _ = stdin.write_all(text.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let _ = child.wait();
    true
}

/// Cuts `rendered` (which may hold attune's own colour codes, never raw
/// untrusted ones: those were made inert) after `max_lines` lines or
/// `max_chars` visible characters. `None` if it fits.
pub fn clip(rendered: &str, max_lines: usize, max_chars: usize) -> Option<String> {
    let mut out = String::new();
    let (mut lines, mut chars, mut styled) = (1usize, 0usize, false);
    let mut it = rendered.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' && it.peek() == Some(&'[') {
            // An SGR sequence of attune's: copied whole, it takes no room.
            styled = true;
            out.push(c);
            for d in it.by_ref() {
                out.push(d);
                if ('\u{40}'..='\u{7e}').contains(&d) && d != '[' {
                    break;
                }
            }
            continue;
        }
        if c == '\n' {
            lines += 1;
            if lines > max_lines {
                return Some(finish(out, styled));
            }
        } else {
            chars += 1;
            if chars > max_chars {
                return Some(finish(out, styled));
            }
        }
        out.push(c);
    }
    None
}

fn finish(mut out: String, styled: bool) -> String {
    out.push('…');
    if styled {
        out.push_str("\u{1b}[0m");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_items_are_not_cut() {
        assert_eq!(clip("one\ntwo", 12, 1000), None);
        assert_eq!(clip(&"x".repeat(1000), 12, 1000), None);
    }

    #[test]
    fn long_items_are_cut_by_lines_or_characters() {
        let many = (1..=30).map(|i| format!("line {i}")).collect::<Vec<_>>();
        let cut = clip(&many.join("\n"), 12, 1000).unwrap_or_default();
        assert_eq!(cut.lines().count(), 12);
        assert!(cut.ends_with("line 12…"));
        let wide = "y".repeat(1_000_000);
        let cut = clip(&wide, 12, 1000).unwrap_or_default();
        assert_eq!(cut.chars().count(), 1001);
    }

    #[test]
    fn colour_codes_are_never_split_and_are_reset() {
        let text = format!("\u{1b}[2m{}\u{1b}[0m", "z".repeat(50));
        let cut = clip(&text, 12, 10).unwrap_or_default();
        assert!(cut.starts_with("\u{1b}[2mzzzzzzzzzz…"));
        assert!(cut.ends_with("\u{1b}[0m"));
    }
}
