//! Making text that attune did not write (the partner's items and name, the
//! relay's error messages) inert before it reaches a terminal, a Markdown file,
//! an HTML page or JSON output.
//!
//! A terminal obeys control characters in what it prints: `ESC [ 8 m` hides what
//! follows (integrity warnings included), OSC 52 writes the clipboard, `ESC [ 2 J`
//! clears the screen, C1 controls (U+0080..U+009F) act like ESC sequences on some
//! terminals, and bidi overrides reorder what is shown. Every such character is
//! shown instead as Rust's escape, `\u{1b}`, so the text stays readable and the
//! terminal does nothing with it. A partner can type a literal `\u{1b}`; it looks
//! the same and is just as harmless.
//!
//! Newlines in multi-line text (journals, answers, reflections) stay, but each
//! continuation line starts with [`CONTINUATION`], which no line of attune's own
//! starts with, so a partner cannot fake a status or warning line. A lone `\r`
//! (which would let a line overwrite itself) is escaped; `\r\n` is a newline.

use std::borrow::Cow;

/// What every continuation line of multi-line text starts with in a terminal.
pub const CONTINUATION: &str = "  │ ";

/// Characters shown escaped: C0 controls, DEL, C1 controls, bidi embeddings,
/// overrides and isolates (the "Trojan Source" set), and the Unicode line and
/// paragraph separators. Newline and tab are decided by the caller.
pub fn is_active(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Newlines {
    /// Shown as `\u{a}`: the text stays on one line.
    Escape,
    /// Kept as they are (for media that quote or collapse them).
    Keep,
    /// Kept, each followed by [`CONTINUATION`].
    Indent,
}

fn escape(s: &str, newlines: Newlines) -> Cow<'_, str> {
    let keep_layout = newlines != Newlines::Escape;
    let safe = |c: char| !is_active(c) || (keep_layout && (c == '\n' || c == '\t'));
    if s.chars()
        .all(|c| safe(c) && !(c == '\n' && newlines == Newlines::Indent))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if keep_layout && c == '\r' && chars.peek() == Some(&'\n') {
            continue; // "\r\n" is a newline written on Windows
        }
        match c {
            '\n' if newlines == Newlines::Indent => {
                out.push('\n');
                out.push_str(CONTINUATION);
            }
            c if safe(c) => out.push(c),
            c => out.extend(c.escape_unicode()),
        }
    }
    Cow::Owned(out)
}

/// One line: names, error messages, short labels. Newlines and tabs are escaped too.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, Newlines::Escape)
}

/// Multi-line text for a terminal: newlines kept with [`CONTINUATION`] after each.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, Newlines::Indent)
}

/// Multi-line text whose medium handles newlines itself (HTML, a Markdown quote).
pub fn lines(s: &str) -> Cow<'_, str> {
    escape(s, Newlines::Keep)
}

/// JSON text as printed by serde_json, with the characters it leaves raw (DEL, C1,
/// bidi controls, separators) written as `\uXXXX` escapes. JSON outside strings is
/// ASCII, so these can only be inside strings, where the escape means the same
/// character: the decoded value is unchanged.
pub fn json(s: String) -> String {
    // serde_json escapes C0 controls inside strings, so a raw newline, tab or
    // return can only be layout between tokens, which must stay as it is.
    let escape = |c: char| is_active(c) && !matches!(c, '\n' | '\t' | '\r');
    if !s.chars().any(escape) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if escape(c) {
            // Every active character is in the Basic Multilingual Plane.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Backslash-escapes what would make Markdown fetch, link, embed HTML or decode
/// an entity: `\`, `` ` ``, `<`, `[`, `&` (CommonMark allows a backslash before
/// any ASCII punctuation, and shows the character as it is).
fn markdown_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '<' | '[' | '&') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Untrusted text inside a Markdown line (a list item, a heading): one line.
pub fn markdown_inline(s: &str) -> String {
    markdown_escape(&line(s))
}

/// Untrusted multi-line text as a Markdown block: newlines kept. The export puts
/// every body in a quote (`> ` on every line), so nothing in it can start a
/// heading or an entry of its own.
pub fn markdown_block(s: &str) -> String {
    markdown_escape(&lines(s))
}

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, none of them a
/// control, bidi or separator character (and no newline or tab).
pub fn valid_name(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name.chars().any(is_active) {
        return Err(NameError::Control);
    }
    Ok(name)
}

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name has at most 64 characters")]
    TooLong,
    #[error("a name cannot contain control characters, tabs, line breaks or bidi overrides")]
    Control,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOSTILE: &str =
        "a\u{1b}[8mhidden\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\u{9b}31m\u{202e}evil\u{7f}\r\u{2028}b";

    fn no_active_in(s: &str, allow: &[char]) -> bool {
        s.chars().all(|c| !is_active(c) || allow.contains(&c))
    }

    #[test]
    fn hostile_text_is_shown_escaped_and_readable() {
        let one = line(HOSTILE);
        assert!(no_active_in(&one, &[]), "{one:?}");
        assert_eq!(
            one,
            "a\\u{1b}[8mhidden\\u{1b}]52;c;aGk=\\u{7}\\u{1b}[2J\\u{9b}31m\\u{202e}evil\\u{7f}\\u{d}\\u{2028}b"
        );
        assert_eq!(line("tab\there\nnext"), "tab\\u{9}here\\u{a}next");
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for s in ["Sam", "ünïcödé \"quotes\" 😀 — ok", "שלום עולם", "a\\u{1b}"] {
            assert!(matches!(line(s), Cow::Borrowed(_)), "{s}");
        }
        assert!(matches!(text("two\nlines\twith a tab"), Cow::Owned(_)));
        assert!(matches!(lines("two\nlines\twith a tab"), Cow::Borrowed(_)));
    }

    #[test]
    fn continuation_lines_cannot_pose_as_attune_lines() {
        let t = text("fine\r\n[forged] fake warning\nintegrity: everything received verifies");
        assert_eq!(
            t,
            "fine\n  │ [forged] fake warning\n  │ integrity: everything received verifies"
        );
        assert!(t.lines().skip(1).all(|l| l.starts_with(CONTINUATION)));
        assert_eq!(lines("a\r\nb\rc"), "a\nb\\u{d}c");
    }

    #[test]
    fn json_escapes_are_lossless() {
        let value = serde_json::json!({ "text": HOSTILE });
        let printed = json(serde_json::to_string_pretty(&value).unwrap_or_default());
        assert!(no_active_in(&printed, &['\n']), "{printed:?}");
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap_or_default();
        assert_eq!(back, value);
    }

    #[test]
    fn markdown_cannot_embed_html_links_or_images() {
        assert_eq!(
            markdown_inline("<img src=x> ![t](http://x) `c` &amp; \\ \u{1b}"),
            "\\<img src=x> !\\[t](http://x) \\`c\\` \\&amp; \\\\ \\\\u{1b}"
        );
        assert_eq!(markdown_block("a\nb"), "a\nb");
        assert_eq!(markdown_inline("a\nb"), "a\\\\u{a}b");
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(valid_name("  Sam "), Ok("Sam"));
        assert_eq!(valid_name("   "), Err(NameError::Empty));
        assert_eq!(valid_name(&"é".repeat(64)), Ok("é".repeat(64).as_str()));
        assert_eq!(valid_name(&"é".repeat(65)), Err(NameError::TooLong));
        for bad in [
            "S\u{1b}[2Jam",
            "Sa\nm",
            "S\tam",
            "S\u{9b}am",
            "\u{202e}Sam",
            "S\u{7}",
        ] {
            assert_eq!(valid_name(bad), Err(NameError::Control), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn nothing_active_survives(s in any::<String>(), hostile in "[\\x00-\\x{9f}\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}\\x{2028}\\x{2029} a-z]{0,40}") {
            for input in [s.as_str(), hostile.as_str()] {
                let one = line(input);
                prop_assert!(no_active_in(&one, &[]), "line: {:?}", one);
                let t = text(input);
                prop_assert!(no_active_in(&t, &['\n', '\t']), "text: {:?}", t);
                // A continuation line never starts where attune's own lines start.
                for l in t.split('\n').skip(1) {
                    prop_assert!(l.starts_with(CONTINUATION), "text: {:?}", t);
                }
                let kept = lines(input);
                prop_assert!(no_active_in(&kept, &['\n', '\t']), "lines: {:?}", kept);
                prop_assert!(no_active_in(&markdown_inline(input), &[]));
                // Escaping twice changes nothing: names are escaped where read
                // and again where printed.
                prop_assert_eq!(line(&one).into_owned(), one.clone().into_owned());
                let printed = json(serde_json::to_string_pretty(&serde_json::json!([input])).unwrap_or_default());
                prop_assert!(no_active_in(&printed, &['\n']), "json: {:?}", printed);
                let back: Vec<String> = serde_json::from_str(&printed).unwrap_or_default();
                prop_assert_eq!(back, vec![input.to_string()]);
            }
        }
    }
}
