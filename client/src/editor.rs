//! Text written in the person's editor: `$VISUAL` or `$EDITOR`, parsed as a
//! shell command line (`code --wait`, `vi -n`), opened on a private temporary
//! file that may start with text (the entry being edited) and with context
//! below a scissors line, as git does: everything from that line down (the
//! question, the partner's words) is dropped when the file is read back, so the
//! writer's own Markdown `#` headings survive.

use std::path::Path;

use attune_core::inert;
use attune_core::profile::ClientError;

/// The line below which the file is context, not text (git's scissors line).
pub const SCISSORS: &str = "# ------------------------ >8 ------------------------";

/// The explanation under the scissors line.
pub const SCISSORS_NOTE: &str =
    "# Write above the line: it and everything below it are left out of what you save.";

/// What the editor opens with.
#[derive(Debug, Default, Clone)]
pub struct Draft {
    /// Text to start from (the current text of an entry being edited).
    pub initial: String,
    /// Context to show below the scissors line, e.g. the question being
    /// answered. It may be the partner's words: it is made inert.
    pub context: Option<String>,
}

impl Draft {
    /// A draft that starts from `text`.
    pub fn from_text(text: &str) -> Self {
        Draft {
            initial: text.to_string(),
            context: None,
        }
    }

    /// A blank draft with `context` below the scissors line.
    pub fn with_context(context: impl Into<String>) -> Self {
        Draft {
            initial: String::new(),
            context: Some(context.into()),
        }
    }

    /// The file's contents as the editor opens it.
    pub fn template(&self) -> String {
        let mut out = self.initial.clone();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if let Some(context) = &self.context {
            out.push('\n');
            out.push_str(SCISSORS);
            out.push('\n');
            out.push_str(SCISSORS_NOTE);
            out.push('\n');
            for line in inert::lines(context.trim()).lines() {
                if line.is_empty() {
                    out.push_str("#\n");
                } else {
                    out.push_str("# ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The text written, from the file as the editor left it: cut at the
    /// scissors line when there was context, and trimmed.
    pub fn read_back(&self, written: &str) -> String {
        let kept = if self.context.is_some() {
            cut_at_scissors(written)
        } else {
            written
        };
        kept.trim().to_string()
    }
}

/// `text` up to the scissors line (all of it if there is none).
pub fn cut_at_scissors(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == SCISSORS {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// The editor's command line: the first of `$VISUAL` and `$EDITOR` that is set
/// and not blank, split as a shell would split it, and the variable it came
/// from; `vi` if neither is set.
pub fn editor_command() -> Result<(Vec<String>, &'static str), ClientError> {
    for var in ["VISUAL", "EDITOR"] {
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let words = parse_command_line(&value).map_err(|why| {
            ClientError::Input(format!(
                "${var} ({}) is not a command line: {why}; set it to an editor, e.g. {var}='code --wait'",
                inert::line(&value)
            ))
        })?;
        return Ok((words, var));
    }
    Ok((vec!["vi".to_string()], "the default editor"))
}

/// Splits a command line as a POSIX shell would (quotes and backslashes).
pub fn parse_command_line(line: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(line).map_err(|e| e.to_string())?;
    if words.is_empty() {
        return Err("it names no program".into());
    }
    Ok(words)
}

/// Opens `draft` in the editor and returns what was written (cut and trimmed).
pub fn edit(draft: &Draft) -> Result<String, ClientError> {
    let (command, source) = editor_command()?;
    let file = private_temp_file()?;
    std::fs::write(file.path(), draft.template())
        .map_err(|e| ClientError::Input(format!("could not prepare a file for the editor: {e}")))?;
    run_editor(&command, source, file.path())?;
    let written = std::fs::read_to_string(file.path())
        .map_err(|e| ClientError::Input(format!("could not read what you wrote: {e}")))?;
    Ok(draft.read_back(&written))
}

/// A new file only its owner can read, in the runtime directory (memory-backed
/// on most systems, so the text need not reach a disk) or else the temporary
/// directory; removed when dropped.
fn private_temp_file() -> Result<tempfile::NamedTempFile, ClientError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("attune-").suffix(".md");
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir());
    let made = match runtime {
        Some(dir) => builder.tempfile_in(&dir).or_else(|_| builder.tempfile()),
        None => builder.tempfile(),
    };
    made.map_err(|e| ClientError::Input(format!("could not create a file for the editor: {e}")))
}

fn run_editor(command: &[String], source: &str, file: &Path) -> Result<(), ClientError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ClientError::Input(format!("{source} names no program")));
    };
    let shown = inert::line(&command.join(" ")).into_owned();
    let from = if source.starts_with("the ") {
        source.to_string()
    } else {
        format!("${source}")
    };
    let status = std::process::Command::new(program)
        .args(args)
        .arg(file)
        .status()
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "'{}' is not installed here or not on your PATH",
                    inert::line(program)
                ),
                std::io::ErrorKind::PermissionDenied => {
                    format!("'{}' is not a program you may run", inert::line(program))
                }
                _ => e.to_string(),
            };
            ClientError::Input(format!(
                "could not start the editor '{shown}' ({from}): {why}; set $VISUAL or $EDITOR to an editor you have (e.g. EDITOR=nano), or pass the text with -m"
            ))
        })?;
    if !status.success() {
        return Err(ClientError::Input(format!(
            "the editor '{shown}' exited with {status}; nothing was saved"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_command_lines_split_like_a_shell() {
        assert_eq!(
            parse_command_line("code --wait").ok(),
            Some(vec!["code".to_string(), "--wait".to_string()])
        );
        assert_eq!(
            parse_command_line("'/opt/My Editor/bin/ed' -n").ok(),
            Some(vec!["/opt/My Editor/bin/ed".to_string(), "-n".to_string()])
        );
        assert!(parse_command_line("vi 'unclosed").is_err());
        assert!(parse_command_line("   ").is_err());
    }

    #[test]
    fn scissors_keep_headings_and_drop_the_context() {
        let draft = Draft::with_context("What did you feel?\n\x1b[31mred");
        let template = draft.template();
        assert!(template.contains(SCISSORS));
        assert!(template.contains("# What did you feel?\n"));
        assert!(!template.contains('\x1b'), "the context is inert");
        let written = format!("# My heading\n\nSome text.\n{template}");
        assert_eq!(draft.read_back(&written), "# My heading\n\nSome text.");
        // Without context nothing is cut, even a line that looks like scissors.
        let plain = Draft::from_text("old");
        assert_eq!(
            plain.read_back(&format!("new\n{SCISSORS}\nkept")),
            format!("new\n{SCISSORS}\nkept")
        );
    }

    #[test]
    fn a_draft_starts_from_the_current_text() {
        let draft = Draft::from_text("line one\nline two");
        assert_eq!(draft.template(), "line one\nline two\n");
        assert_eq!(
            draft.read_back("line one\nline two\nthree\n"),
            "line one\nline two\nthree"
        );
    }
}
