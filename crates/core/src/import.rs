//! Journal entries from elsewhere (`attune import`): attune's own JSON export
//! (`attune export --format json`), jrnl's (`jrnl --export json`) and a Day One
//! JSON export. [`parse`] reads a file into entries with their original times;
//! [`import`] writes each as a journal entry at that time, at most once
//! ([`Profile::import_journal`]), or only says what it would do.
//!
//! What is kept of each format, and how:
//!
//! - **attune**: the entries of kind `journal` that are the member's own, with
//!   their text, time and privacy. An entry whose id is already in the profile
//!   (the export of this very profile) is there already. A partner's entry is
//!   skipped: written again it would become this member's. Whose an entry is
//!   comes from its device when the roster knows it (an export from the
//!   partner's profile calls the partner's entries "me"), else from `author`.
//!   Deleted entries and other kinds (check-ins, answers, …) are skipped.
//! - **jrnl**: `title`, then `body` on the next line (as jrnl writes an entry
//!   back to its journal file); `date` and `time` are wall-clock time where the
//!   file was written, which jrnl does not record: they are read in the time
//!   zone given to [`parse`] (the CLI's local one, `TZ`). A time the clocks
//!   skipped is read as the hour after; a time they passed twice, the first.
//!   jrnl's `tags` are words of the text (`@work`), so the text keeps them and
//!   the list is not added again; `starred` has no counterpart and is dropped.
//! - **Day One**: `text` (Markdown) with Day One's backslash escapes undone
//!   (`Done\!` was typed `Done!`), and each photo, audio, video or PDF
//!   reference (`![](dayone-moment://…)`) replaced by `[photo]`, `[audio]`,
//!   `[video]` or `[PDF]`: attachments are not imported. `tags` are added as a
//!   last line, `tags: a, b`. `creationDate` is an exact instant (UTC), so
//!   `timeZone` is not needed; `starred`, location and weather are dropped.
//!
//! An entry with no text (an empty jrnl entry, a Day One entry with only a
//! photo) is skipped and counted. An entry that cannot be read (a missing or
//! impossible date, a field of the wrong type, a text too long for one item)
//! stops the whole import before anything is written: every such entry is
//! named, with what is wrong.
//!
//! Text is kept as written in the file, control characters included: it is
//! data, made inert wherever it is shown (`inert`), like everything else.

use std::collections::HashSet;

use attune_proto::{DeviceId, EntryId};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ClientError;
use crate::inert;
use crate::item::Body;
use crate::profile::{Imported, Profile};

/// What wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `attune export --format json`.
    Attune,
    /// `jrnl --export json`.
    Jrnl,
    /// A Day One JSON export (`Journal.json` in its zip).
    #[serde(rename = "dayone")]
    DayOne,
}

impl Format {
    /// The name people know it by.
    pub fn name(self) -> &'static str {
        match self {
            Format::Attune => "attune",
            Format::Jrnl => "jrnl",
            Format::DayOne => "Day One",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Format::Attune => "attune",
            Format::Jrnl => "jrnl",
            Format::DayOne => "dayone",
        }
    }
}

/// The largest file [`parse`] is given (the CLI refuses larger ones before
/// reading them): exports of text are far smaller.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// How many unreadable entries an error names; it counts the rest.
const NAMED_PROBLEMS: usize = 8;

/// One entry read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its place in the file's `entries` (from 1), for messages.
    pub position: usize,
    /// Its original time, Unix milliseconds.
    pub at: i64,
    pub text: String,
    /// The privacy an attune export recorded; `None` for the other formats.
    pub private: Option<bool>,
    /// The file's own id for it (attune's entry id, Day One's and jrnl's
    /// `uuid`), when it has one.
    pub source_id: Option<String>,
    /// attune: whether the export says the member wrote it (`author` "me").
    pub mine: bool,
    /// attune: the device that wrote it.
    pub device: Option<DeviceId>,
}

/// Entries left out, by why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// No text (an empty entry, a Day One entry with only attachments).
    pub without_text: usize,
    /// attune: written by the partner (only its author can import it).
    pub partner: usize,
    /// attune: not a journal entry (check-ins, answers, appreciations, …).
    pub not_journal: usize,
    /// attune: deleted.
    pub deleted: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.without_text + self.partner + self.not_journal + self.deleted
    }
}

/// A file read into entries.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    pub entries: Vec<Candidate>,
    pub skipped: Skipped,
}

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// Its place in `entries`, from 1.
    pub position: usize,
    /// What is wrong, in words.
    pub problem: String,
}

/// Why a file cannot be imported. Each says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("it is not text (not UTF-8). {}", WHAT_IMPORTS)]
    NotText,
    #[error("it is a zip archive. A Day One export is a .zip: unzip it and import the .json file inside (one per journal)")]
    Zip,
    #[error("it ends before its JSON does: was it cut off? Export it again")]
    CutOff,
    #[error(
        "it is not JSON (it stops making sense at line {line}, column {column}). {}",
        WHAT_IMPORTS
    )]
    NotJson { line: usize, column: usize },
    #[error("it holds {found}, not an export: attune, jrnl and Day One all write an object with \"entries\"")]
    NotAnExport { found: &'static str },
    #[error("attune cannot tell what wrote it (it has {keys}). Give --format attune, jrnl or dayone if you know: attune's export has \"exported_at\", jrnl's \"tags\" and Day One's \"metadata\", each with \"entries\"")]
    UnknownShape { keys: String },
    #[error("it has no \"entries\" list, which every {} export has: is it the right file?", .format.name())]
    NoEntries { format: Format },
    #[error("{}", entries_message(*.format, .problems, *.total))]
    Entries {
        format: Format,
        problems: Vec<EntryProblem>,
        total: usize,
    },
}

const WHAT_IMPORTS: &str = "attune imports the JSON that `attune export --format json`, `jrnl --export json` or Day One's JSON export writes";

fn entries_message(format: Format, problems: &[EntryProblem], total: usize) -> String {
    let mut out = format!(
        "{} of its {total} {} entries cannot be imported, so nothing was imported:",
        problems.len(),
        format.name()
    );
    for p in problems.iter().take(NAMED_PROBLEMS) {
        out.push_str(&format!("\n  entry {}: {}", p.position, p.problem));
    }
    if problems.len() > NAMED_PROBLEMS {
        out.push_str(&format!("\n  and {} more", problems.len() - NAMED_PROBLEMS));
    }
    out.push_str("\nCorrect or remove those entries in the file, then import it again.");
    out
}

impl From<ImportError> for ClientError {
    /// On one line (an error is printed as one).
    fn from(e: ImportError) -> Self {
        let text = e.to_string();
        ClientError::Input(text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
    }
}

/// A value from the file, quoted for a message: inert, on one line, cut short.
fn quoted(v: &Value) -> String {
    let raw = match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    let cut: String = raw.chars().take(40).collect();
    let more = if cut.len() < raw.len() { "…" } else { "" };
    format!("{}{more}", inert::line(&cut))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A field that must be a string.
fn string<'a>(o: &'a Map<String, Value>, name: &str, like: &str) -> Result<&'a str, String> {
    match o.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("it has no \"{name}\" ({like})")),
        Some(v) => Err(format!(
            "its \"{name}\" is {}, not text ({like})",
            kind_of(v)
        )),
    }
}

/// A field that may be missing (or null), else a string.
fn optional_string<'a>(o: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("its \"{name}\" is {}, not text", kind_of(v))),
    }
}

/// A field that may be missing (or null), else a list of strings.
fn optional_strings(o: &Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(format!(
                    "its \"{name}\" holds {}, where a list of words belongs",
                    kind_of(v)
                )),
            })
            .collect(),
        Some(v) => Err(format!(
            "its \"{name}\" is {}, not a list of words",
            kind_of(v)
        )),
    }
}

/// What one entry of the file becomes.
enum Read {
    Entry(Candidate),
    WithoutText,
    NotJournal,
    Deleted,
}

/// Reads `bytes` as a `format` file, or as whatever its shape says when
/// `format` is `None`. jrnl's wall-clock dates are read in `tz`.
pub fn parse<Tz: TimeZone>(
    bytes: &[u8],
    format: Option<Format>,
    tz: &Tz,
) -> Result<Parsed, ImportError> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(ImportError::Zip);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ImportError::NotText)?;
    // A byte-order mark is not JSON, but some editors write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        if e.classify() == serde_json::error::Category::Eof {
            ImportError::CutOff
        } else {
            ImportError::NotJson {
                line: e.line(),
                column: e.column(),
            }
        }
    })?;
    let top = match &doc {
        Value::Object(o) => o,
        other => {
            return Err(ImportError::NotAnExport {
                found: match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "one string",
                    Value::Number(_) => "one number",
                    Value::Bool(_) => "true or false",
                    _ => "null",
                },
            })
        }
    };
    let format = match format.or_else(|| detect(top)) {
        Some(f) => f,
        None => {
            let mut keys: Vec<String> = top
                .keys()
                .take(6)
                .map(|k| quoted(&Value::String(k.clone())))
                .collect();
            if top.len() > 6 {
                keys.push("…".into());
            }
            return Err(ImportError::UnknownShape {
                keys: if keys.is_empty() {
                    "nothing in it".into()
                } else {
                    keys.join(", ")
                },
            });
        }
    };
    let Some(Value::Array(entries)) = top.get("entries") else {
        return Err(ImportError::NoEntries { format });
    };
    let mut parsed = Parsed {
        format,
        entries: Vec::with_capacity(entries.len()),
        skipped: Skipped::default(),
    };
    let mut problems = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let position = i + 1;
        let read = match e {
            Value::Object(o) => match format {
                Format::Attune => attune_entry(o, position),
                Format::Jrnl => jrnl_entry(o, position, tz),
                Format::DayOne => dayone_entry(o, position),
            },
            v => Err(format!("it is {}, not an entry (an object)", kind_of(v))),
        };
        match read {
            Ok(Read::Entry(c)) => parsed.entries.push(c),
            Ok(Read::WithoutText) => parsed.skipped.without_text += 1,
            Ok(Read::NotJournal) => parsed.skipped.not_journal += 1,
            Ok(Read::Deleted) => parsed.skipped.deleted += 1,
            Err(problem) => problems.push(EntryProblem { position, problem }),
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Entries {
            format,
            problems,
            total: entries.len(),
        });
    }
    Ok(parsed)
}

/// The format a file's top level names, or its first entry's fields.
fn detect(top: &Map<String, Value>) -> Option<Format> {
    if top.contains_key("exported_at") || (top.contains_key("me") && top.contains_key("partner")) {
        return Some(Format::Attune);
    }
    if top.contains_key("metadata") {
        return Some(Format::DayOne);
    }
    if top.contains_key("tags") {
        return Some(Format::Jrnl);
    }
    let first = top.get("entries")?.as_array()?.first()?.as_object()?;
    if first.contains_key("creationDate") {
        Some(Format::DayOne)
    } else if first.contains_key("date") && first.contains_key("time") {
        Some(Format::Jrnl)
    } else if first.contains_key("kind") && first.contains_key("author") {
        Some(Format::Attune)
    } else {
        None
    }
}

fn attune_entry(o: &Map<String, Value>, position: usize) -> Result<Read, String> {
    let kind = string(o, "kind", "what kind of item it is")?;
    if kind != "journal" {
        return Ok(Read::NotJournal);
    }
    let mine = match string(o, "author", "\"me\" or \"partner\"")? {
        "me" => true,
        "partner" => false,
        other => {
            return Err(format!(
                "its \"author\" is {}, not \"me\" or \"partner\"",
                quoted(&Value::String(other.into()))
            ))
        }
    };
    if o.get("deleted").and_then(Value::as_bool) == Some(true) {
        return Ok(Read::Deleted);
    }
    let id = string(o, "id", "the entry's id, 32 hex digits")?;
    if EntryId::from_hex(id).is_err() {
        return Err(format!(
            "its \"id\" is {}, not an entry id (32 hex digits)",
            quoted(&Value::String(id.into()))
        ));
    }
    let device = match optional_string(o, "device")? {
        None => None,
        Some(d) => Some(DeviceId::from_hex(d).map_err(|_| {
            format!(
                "its \"device\" is {}, not a device id (64 hex digits)",
                quoted(&Value::String(d.into()))
            )
        })?),
    };
    let at = match o.get("at") {
        Some(v @ Value::Number(_)) => v
            .as_i64()
            .filter(|ms| DateTime::from_timestamp_millis(*ms).is_some())
            .ok_or_else(|| format!("its \"at\" is {}, not a time", quoted(v)))?,
        None | Some(Value::Null) => return Err("it has no \"at\" (its time)".into()),
        Some(v) => {
            return Err(format!(
                "its \"at\" is {}, not a time in milliseconds",
                kind_of(v)
            ))
        }
    };
    let private = match o.get("private") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => {
            return Err("it has no \"private\" (true or false)".into());
        }
        Some(v) => {
            return Err(format!(
                "its \"private\" is {}, not true or false",
                kind_of(v)
            ))
        }
    };
    let text = string(o, "text", "the entry's words")?;
    if text.trim().is_empty() {
        return Ok(Read::WithoutText);
    }
    Ok(Read::Entry(Candidate {
        position,
        at,
        text: text.to_string(),
        private: Some(private),
        source_id: Some(id.to_ascii_lowercase()),
        mine,
        device,
    }))
}

/// jrnl's entry text: the title, then the body on the next line.
fn jrnl_text(title: &str, body: &str) -> String {
    let (title, body) = (title.trim(), body.trim());
    match (title.is_empty(), body.is_empty()) {
        (_, true) => title.to_string(),
        (true, false) => body.to_string(),
        (false, false) => format!("{title}\n{body}"),
    }
}

/// Wall-clock time in `tz` as Unix milliseconds: in a gap (the clocks went
/// forward), the hour after; when it happened twice, the first.
fn wall_clock_ms<Tz: TimeZone>(tz: &Tz, t: NaiveDateTime) -> Option<i64> {
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| {
            let later = t.checked_add_signed(chrono::Duration::hours(1))?;
            tz.from_local_datetime(&later).earliest()
        })
        .map(|t| t.timestamp_millis())
}

fn jrnl_entry<Tz: TimeZone>(
    o: &Map<String, Value>,
    position: usize,
    tz: &Tz,
) -> Result<Read, String> {
    let title = optional_string(o, "title")?.unwrap_or("");
    let body = optional_string(o, "body")?.unwrap_or("");
    let date = string(o, "date", "YYYY-MM-DD")?;
    let time = string(o, "time", "HH:MM")?;
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
        format!(
            "its \"date\" is {}, not a date of the form YYYY-MM-DD",
            quoted(&Value::String(date.into()))
        )
    })?;
    let clock = NaiveTime::parse_from_str(time, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"))
        .map_err(|_| {
            format!(
                "its \"time\" is {}, not a time of the form HH:MM",
                quoted(&Value::String(time.into()))
            )
        })?;
    let at = wall_clock_ms(tz, day.and_time(clock))
        .ok_or_else(|| format!("its date and time, {date} {time}, are out of range"))?;
    let source_id = optional_string(o, "uuid")?.map(str::to_string);
    let text = jrnl_text(title, body);
    if text.is_empty() {
        return Ok(Read::WithoutText);
    }
    Ok(Read::Entry(Candidate {
        position,
        at,
        text,
        private: None,
        source_id,
        mine: true,
        device: None,
    }))
}

/// What a Day One attachment reference shows as.
fn attachment(url: &str) -> &'static str {
    let rest = url.strip_prefix("dayone-moment:").unwrap_or(url);
    if rest.starts_with("//") {
        "[photo]"
    } else if rest.starts_with("/audio/") {
        "[audio]"
    } else if rest.starts_with("/video/") {
        "[video]"
    } else if rest.starts_with("/pdfAttachment/") {
        "[PDF]"
    } else {
        "[attachment]"
    }
}

/// Replaces each `![alt](dayone-moment:…)` with what it was (`[photo]`, …).
fn replace_attachments(text: &str) -> String {
    const LINK: &str = "](dayone-moment:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(LINK) {
        let url_start = at + 2;
        let (Some(open), Some(close)) = (
            rest[..at].rfind("!["),
            rest[url_start..].find(')').map(|c| url_start + c),
        ) else {
            out.push_str(&rest[..at + LINK.len()]);
            rest = &rest[at + LINK.len()..];
            continue;
        };
        out.push_str(&rest[..open]);
        out.push_str(attachment(&rest[url_start..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Undoes Markdown's backslash escapes (a backslash before ASCII punctuation),
/// which Day One adds to what was typed.
fn unescape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if next.is_ascii_punctuation() {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Day One's entry text as it was typed, attachments named, tags last; `None`
/// when no words are left.
fn dayone_text(raw: &str, tags: &[String]) -> Option<String> {
    let text = unescape_markdown(&replace_attachments(raw));
    let text = text.trim();
    let words_left = ["[photo]", "[audio]", "[video]", "[PDF]", "[attachment]"]
        .iter()
        .fold(text.to_string(), |t, a| t.replace(a, ""));
    if words_left.trim().is_empty() {
        return None;
    }
    let tags: Vec<&str> = tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    Some(if tags.is_empty() {
        text.to_string()
    } else {
        format!("{text}\n\ntags: {}", tags.join(", "))
    })
}

fn dayone_entry(o: &Map<String, Value>, position: usize) -> Result<Read, String> {
    let created = string(o, "creationDate", "a time such as 2024-01-15T14:30:00Z")?;
    let at = DateTime::parse_from_rfc3339(created)
        .map_err(|_| {
            format!(
                "its \"creationDate\" is {}, not a time of the form 2024-01-15T14:30:00Z",
                quoted(&Value::String(created.into()))
            )
        })?
        .timestamp_millis();
    let raw = optional_string(o, "text")?.unwrap_or("");
    let tags = optional_strings(o, "tags")?;
    let source_id = optional_string(o, "uuid")?.map(str::to_string);
    let Some(text) = dayone_text(raw, &tags) else {
        return Ok(Read::WithoutText);
    };
    Ok(Read::Entry(Candidate {
        position,
        at,
        text,
        private: None,
        source_id,
        mine: true,
        device: None,
    }))
}

/// What the import does with the entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `Some(true)`: every entry private; `Some(false)`: every entry shared
    /// (refused for an attune export, whose private entries stay private);
    /// `None`: jrnl and Day One entries private, attune's as they were.
    pub private: Option<bool>,
    /// Only say what would be imported.
    pub dry_run: bool,
}

/// What became of one entry that was (or would be) imported, or was here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Imported,
    WouldImport,
    AlreadyHere,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Its place in the file's `entries`, from 1.
    pub entry: usize,
    /// The journal entry's id (unknown for one a dry run would import).
    pub id: Option<String>,
    pub at: i64,
    pub private: bool,
    pub status: Status,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: Format,
    pub dry_run: bool,
    /// Entries written (dry: that would be).
    pub imported: usize,
    /// Entries an earlier import (or the profile itself) already has; a
    /// repeat within the file counts here too.
    pub already_here: usize,
    /// Of those imported, how many are private and how many shared.
    pub private: usize,
    pub shared: usize,
    pub skipped: Skipped,
    /// Every entry imported or already here, in file order.
    pub entries: Vec<Outcome>,
}

/// Where an entry comes from, as the bytes its entry id is derived from:
/// length-prefixed format, the file's id for it (or nothing), time and text.
fn source_of(format: Format, c: &Candidate) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.text.len() + 64);
    let at = c.at.to_string();
    for part in [
        "attune/import/v1".as_bytes(),
        format.key().as_bytes(),
        c.source_id.as_deref().unwrap_or("").as_bytes(),
        at.as_bytes(),
        c.text.as_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// What an import will do: found before anything is written.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The entries to write: (entry, its source, private).
    todo: Vec<(&'a Candidate, Vec<u8>, bool)>,
    /// The entries already here, the ones skipped, and the counts so far.
    report: Report,
    /// Entries that cannot be imported (too long for one item): if any, the
    /// import writes nothing.
    pub problems: Vec<EntryProblem>,
    /// How many entries the file has.
    total: usize,
}

/// Looks at every entry of `parsed` against `p`: whose it is (attune), how
/// private it will be, whether an earlier import (or the profile itself)
/// already has it, and whether it fits in one item. Writes nothing.
pub fn plan<'a>(
    p: &Profile,
    parsed: &'a Parsed,
    options: &Options,
) -> Result<Plan<'a>, ClientError> {
    if parsed.format == Format::Attune && options.private == Some(false) {
        return Err(ClientError::Input(
            "an attune export keeps each entry as private or shared as it was: --shared is for jrnl and Day One files (--private makes every entry private)".into(),
        ));
    }
    let roster = p.roster()?;
    let member = p.member()?;
    let mut plan = Plan {
        todo: Vec::new(),
        report: Report {
            format: parsed.format,
            dry_run: options.dry_run,
            imported: 0,
            already_here: 0,
            private: 0,
            shared: 0,
            skipped: parsed.skipped.clone(),
            entries: Vec::new(),
        },
        problems: Vec::new(),
        total: parsed.entries.len() + parsed.skipped.total(),
    };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for c in &parsed.entries {
        if parsed.format == Format::Attune {
            // The roster knows whose a device is, whatever the export says.
            let mine = match c.device.as_ref().and_then(|d| roster.device(d)) {
                Some(d) => d.member == member,
                None => c.mine,
            };
            if !mine {
                plan.report.skipped.partner += 1;
                continue;
            }
        }
        let private = match (parsed.format, options.private) {
            (_, Some(forced)) => forced,
            (Format::Attune, None) => c.private.unwrap_or(true),
            (_, None) => true,
        };
        let source = source_of(parsed.format, c);
        let here = match &c.source_id {
            // The export of this very profile: the entry itself is here.
            Some(id) if parsed.format == Format::Attune && p.db.has_item(id)? => {
                EntryId::from_hex(id).ok()
            }
            _ => p.imported(&source)?,
        };
        if here.is_some() || !seen.insert(source.clone()) {
            plan.report.already_here += 1;
            plan.report.entries.push(Outcome {
                entry: c.position,
                id: here.map(|id| id.to_hex()),
                at: c.at,
                private,
                status: Status::AlreadyHere,
            });
            continue;
        }
        let body = Body::Journal {
            text: c.text.clone(),
        };
        if !p.fits(body, c.at)? {
            plan.problems.push(EntryProblem {
                position: c.position,
                problem: format!(
                    "its text is {} bytes, more than one journal entry holds (about 1 MB): split it into several entries",
                    c.text.len()
                ),
            });
            continue;
        }
        plan.todo.push((c, source, private));
    }
    Ok(plan)
}

impl Plan<'_> {
    /// Why nothing can be imported, if an entry cannot be.
    pub fn problem(&self) -> Option<ImportError> {
        (!self.problems.is_empty()).then(|| ImportError::Entries {
            format: self.report.format,
            problems: self.problems.clone(),
            total: self.total,
        })
    }

    /// What the import would do, writing nothing.
    pub fn dry_run(mut self) -> Report {
        for (c, _, private) in self.todo.drain(..) {
            self.report.count(c, None, private, Status::WouldImport);
        }
        self.report.dry_run = true;
        self.report.entries.sort_by_key(|o| o.entry);
        self.report
    }

    /// Writes the entries into the outbox (nothing on the network), each in
    /// its own transaction: an interruption leaves whole entries, and the same
    /// import run again adds only the rest. Refused when an entry cannot be
    /// imported ([`Plan::problem`]).
    pub fn write(mut self, p: &mut Profile) -> Result<Report, ClientError> {
        if let Some(e) = self.problem() {
            return Err(e.into());
        }
        let todo = std::mem::take(&mut self.todo);
        let total = todo.len();
        for (written, (c, source, private)) in todo.into_iter().enumerate() {
            let (id, status) = match p.import_journal(&source, c.text.clone(), private, c.at) {
                Ok(Imported::Written(id)) => (id, Status::Imported),
                Ok(Imported::AlreadyHere(id)) => (id, Status::AlreadyHere),
                Err(e) => {
                    return Err(ClientError::Input(format!(
                        "{e}. {written} of the {total} entries to import were written before this: run the same import again to add the rest (what is here already is not written twice)"
                    )))
                }
            };
            self.report.count(c, Some(id), private, status);
        }
        self.report.dry_run = false;
        self.report.entries.sort_by_key(|o| o.entry);
        Ok(self.report)
    }
}

impl Report {
    fn count(&mut self, c: &Candidate, id: Option<EntryId>, private: bool, status: Status) {
        if status == Status::AlreadyHere {
            self.already_here += 1;
        } else {
            self.imported += 1;
            if private {
                self.private += 1;
            } else {
                self.shared += 1;
            }
        }
        self.entries.push(Outcome {
            entry: c.position,
            id: id.map(|id| id.to_hex()),
            at: c.at,
            private,
            status,
        });
    }
}

/// Imports `parsed` into `p` as journal entries at their original times
/// ([`plan`], then [`Plan::write`] or, with `dry_run`, [`Plan::dry_run`]):
/// nothing is written if an entry cannot be imported.
pub fn import(p: &mut Profile, parsed: &Parsed, options: &Options) -> Result<Report, ClientError> {
    let plan = plan(p, parsed, options)?;
    if let Some(e) = plan.problem() {
        return Err(e.into());
    }
    if options.dry_run {
        Ok(plan.dry_run())
    } else {
        plan.write(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};
    use serde_json::json;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn parse_json(v: Value, format: Option<Format>) -> Result<Parsed, ImportError> {
        parse(v.to_string().as_bytes(), format, &Utc)
    }

    /// A jrnl export as `jrnl --export json` writes it.
    fn jrnl_file() -> Value {
        json!({
            "tags": {"@work": 1},
            "entries": [
                {"title": "Called in sick.", "body": "Used the time to clean the house.\n\nThen @work called.\n",
                 "date": "2013-06-03", "time": "09:00", "tags": ["@work"], "starred": false},
                {"title": "Dinner with Gabriel.", "body": "", "date": "2013-06-07", "time": "20:30",
                 "tags": [], "starred": true},
                {"title": "", "body": "", "date": "2013-06-08", "time": "07:15", "tags": [], "starred": false}
            ]
        })
    }

    #[test]
    fn jrnl_title_and_body_become_one_text_at_the_wall_clock_time() {
        let p = parse_json(jrnl_file(), None).unwrap();
        assert_eq!(p.format, Format::Jrnl);
        assert_eq!(p.entries.len(), 2);
        let first = &p.entries[0];
        assert_eq!(
            first.text,
            "Called in sick.\nUsed the time to clean the house.\n\nThen @work called."
        );
        assert_eq!(first.at, ms("2013-06-03T09:00:00Z"));
        assert_eq!(first.position, 1);
        assert_eq!(first.private, None);
        // A title alone (tags stay in the text; the star is dropped).
        assert_eq!(p.entries[1].text, "Dinner with Gabriel.");
        assert_eq!(p.entries[1].at, ms("2013-06-07T20:30:00Z"));
        // An entry with neither title nor body is skipped, counted.
        assert_eq!(p.skipped.without_text, 1);
    }

    #[test]
    fn jrnl_times_are_read_in_the_given_time_zone() {
        let tokyo = FixedOffset::east_opt(9 * 3600).unwrap();
        let p = parse(jrnl_file().to_string().as_bytes(), None, &tokyo).unwrap();
        assert_eq!(p.entries[0].at, ms("2013-06-03T09:00:00+09:00"));
        assert_eq!(p.entries[0].at, ms("2013-06-03T00:00:00Z"));
        let la = FixedOffset::west_opt(7 * 3600).unwrap();
        let p = parse(jrnl_file().to_string().as_bytes(), None, &la).unwrap();
        assert_eq!(p.entries[1].at, ms("2013-06-08T03:30:00Z"));
    }

    #[test]
    fn jrnl_body_without_title_and_seconds_and_uuid() {
        let file = json!({"tags": {}, "entries": [
            {"title": "  ", "body": "Only a body.", "date": "2020-02-29", "time": "23:59:30",
             "tags": [], "starred": false, "uuid": "ABC-1"}
        ]});
        let p = parse_json(file, Some(Format::Jrnl)).unwrap();
        assert_eq!(p.entries[0].text, "Only a body.");
        assert_eq!(p.entries[0].at, ms("2020-02-29T23:59:30Z"));
        assert_eq!(p.entries[0].source_id.as_deref(), Some("ABC-1"));
    }

    /// A zone whose clocks jump from 02:00 to 03:00 on 2021-03-14 and back
    /// from 02:00 to 01:00 on 2021-11-07, like New York's (UTC-5, UTC-4).
    #[derive(Clone, Copy, Debug)]
    struct NewYork2021;

    impl NewYork2021 {
        fn at(day: u32, month: u32, h: u32) -> NaiveDateTime {
            NaiveDate::from_ymd_opt(2021, month, day)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        }
        fn winter() -> FixedOffset {
            FixedOffset::west_opt(5 * 3600).unwrap()
        }
        fn summer() -> FixedOffset {
            FixedOffset::west_opt(4 * 3600).unwrap()
        }
    }

    impl TimeZone for NewYork2021 {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            NewYork2021
        }
        fn offset_from_local_date(&self, _: &NaiveDate) -> chrono::LocalResult<FixedOffset> {
            chrono::LocalResult::None
        }
        fn offset_from_local_datetime(
            &self,
            local: &NaiveDateTime,
        ) -> chrono::LocalResult<FixedOffset> {
            use chrono::LocalResult::{Ambiguous, None, Single};
            let (winter, summer) = (Self::winter(), Self::summer());
            if *local < Self::at(14, 3, 2) {
                Single(winter)
            } else if *local < Self::at(14, 3, 3) {
                None
            } else if *local < Self::at(7, 11, 1) {
                Single(summer)
            } else if *local < Self::at(7, 11, 2) {
                Ambiguous(summer, winter)
            } else {
                Single(winter)
            }
        }
        fn offset_from_utc_date(&self, _: &NaiveDate) -> FixedOffset {
            Self::winter()
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            if *utc >= Self::at(14, 3, 7) && *utc < Self::at(7, 11, 6) {
                Self::summer()
            } else {
                Self::winter()
            }
        }
    }

    #[test]
    fn jrnl_times_the_clocks_skipped_or_repeated_are_read_once() {
        let file = json!({"tags": {}, "entries": [
            {"title": "In the gap.", "body": "", "date": "2021-03-14", "time": "02:30", "tags": [], "starred": false},
            {"title": "Before.", "body": "", "date": "2021-03-14", "time": "01:30", "tags": [], "starred": false},
            {"title": "Twice.", "body": "", "date": "2021-11-07", "time": "01:30", "tags": [], "starred": false}
        ]});
        let p = parse(file.to_string().as_bytes(), None, &NewYork2021).unwrap();
        // 02:30 does not exist: 03:30 summer time, half an hour after the switch.
        assert_eq!(p.entries[0].at, ms("2021-03-14T03:30:00-04:00"));
        assert_eq!(p.entries[0].at, ms("2021-03-14T07:30:00Z"));
        assert_eq!(p.entries[1].at, ms("2021-03-14T01:30:00-05:00"));
        // 01:30 happened twice: the first, still summer time.
        assert_eq!(p.entries[2].at, ms("2021-11-07T01:30:00-04:00"));
    }

    #[test]
    fn bad_jrnl_dates_name_each_entry_and_nothing_is_read() {
        let file = json!({"tags": {}, "entries": [
            {"title": "Fine.", "body": "", "date": "2021-02-28", "time": "10:00", "tags": [], "starred": false},
            {"title": "No such day.", "body": "", "date": "2021-02-30", "time": "10:00", "tags": [], "starred": false},
            {"title": "Bad time.", "body": "", "date": "2021-03-01", "time": "25:00", "tags": [], "starred": false},
            {"title": "No date.", "body": "", "time": "10:00", "tags": [], "starred": false},
            {"title": 7, "body": "", "date": "2021-03-01", "time": "10:00", "tags": [], "starred": false}
        ]});
        let err = parse_json(file, None).unwrap_err();
        let ImportError::Entries {
            problems, total, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(*total, 5);
        let at: Vec<usize> = problems.iter().map(|p| p.position).collect();
        assert_eq!(at, vec![2, 3, 4, 5]);
        let msg = err.to_string();
        assert!(
            msg.contains(
                "entry 2: its \"date\" is \"2021-02-30\", not a date of the form YYYY-MM-DD"
            ),
            "{msg}"
        );
        assert!(msg.contains("entry 3: its \"time\" is \"25:00\""), "{msg}");
        assert!(msg.contains("entry 4: it has no \"date\""), "{msg}");
        assert!(
            msg.contains("entry 5: its \"title\" is a number, not text"),
            "{msg}"
        );
        assert!(msg.contains("nothing was imported"), "{msg}");
        assert!(
            !msg.contains("serde") && !msg.contains("invalid type"),
            "{msg}"
        );
    }

    /// A Day One export as its Journal.json holds it.
    fn dayone_file() -> Value {
        json!({
            "metadata": {"version": "1.0"},
            "entries": [
                {"uuid": "81F0F3CA693F484792F76359E9E2ACE8", "creationDate": "2017-12-25T03:04:32Z",
                 "modifiedDate": "2017-12-26T08:00:00Z", "timeZone": "Asia/Bangkok", "starred": true,
                 "tags": ["travel", " family "],
                 "text": "# Christmas in Bangkok\n\n![](dayone-moment://68D729369ED84A8B91B5D348E4592EFE)\n\nSo warm\\! We ate at 7\\.30 \\- lovely\\.\nA backslash: C:\\\\Users",
                 "location": {"localityName": "Bangkok"}},
                {"uuid": "AAAA", "creationDate": "2018-01-01T10:00:00.250+02:00", "timeZone": "Europe/Athens",
                 "text": "Voice note: ![](dayone-moment:/audio/1234) and a PDF ![](dayone-moment:/pdfAttachment/99)"},
                {"uuid": "BBBB", "creationDate": "2018-01-02T10:00:00Z",
                 "text": "![](dayone-moment://1111)\n![](dayone-moment:/video/2222)"},
                {"uuid": "CCCC", "creationDate": "2018-01-03T10:00:00Z", "tags": ["empty"]}
            ]
        })
    }

    #[test]
    fn day_one_text_is_unescaped_with_attachments_named_and_tags_last() {
        let p = parse_json(dayone_file(), None).unwrap();
        assert_eq!(p.format, Format::DayOne);
        assert_eq!(p.entries.len(), 2);
        let e = &p.entries[0];
        assert_eq!(
            e.text,
            "# Christmas in Bangkok\n\n[photo]\n\nSo warm! We ate at 7.30 - lovely.\nA backslash: C:\\Users\n\ntags: travel, family"
        );
        // creationDate is the instant; the time zone only says where it was.
        assert_eq!(e.at, ms("2017-12-25T03:04:32Z"));
        assert_eq!(
            e.source_id.as_deref(),
            Some("81F0F3CA693F484792F76359E9E2ACE8")
        );
        let e = &p.entries[1];
        assert_eq!(e.text, "Voice note: [audio] and a PDF [PDF]");
        assert_eq!(e.at, ms("2018-01-01T08:00:00.250Z"));
        // Only attachments, or no text at all: skipped.
        assert_eq!(p.skipped.without_text, 2);
    }

    #[test]
    fn bad_day_one_entries_are_named() {
        let file = json!({"metadata": {}, "entries": [
            {"creationDate": "2018-01-01 10:00", "text": "a"},
            {"creationDate": "2018-01-01T10:00:00Z", "text": ["a"]},
            {"text": "no date"},
            {"creationDate": "2018-01-01T10:00:00Z", "text": "a", "tags": "one"},
            "not an entry"
        ]});
        let err = parse_json(file, None).unwrap_err().to_string();
        for expected in [
            "entry 1: its \"creationDate\" is \"2018-01-01 10:00\", not a time",
            "entry 2: its \"text\" is a list, not text",
            "entry 3: it has no \"creationDate\"",
            "entry 4: its \"tags\" is a string, not a list of words",
            "entry 5: it is a string, not an entry",
        ] {
            assert!(err.contains(expected), "{expected}\n{err}");
        }
    }

    #[test]
    fn attachment_references_that_are_not_links_stay() {
        assert_eq!(
            replace_attachments("see ](dayone-moment: here"),
            "see ](dayone-moment: here"
        );
        assert_eq!(
            replace_attachments("![a](dayone-moment://x)![b](dayone-moment:/other/y)"),
            "[photo][attachment]"
        );
        assert_eq!(unescape_markdown("a\\b \\* \\\\ \\"), "a\\b * \\ \\");
    }

    #[test]
    fn the_shape_says_the_format_or_the_error_says_what_to_do() {
        let attune = json!({"exported_at": 1, "me": "Alex", "partner": "Sam", "entries": []});
        assert_eq!(parse_json(attune, None).unwrap().format, Format::Attune);
        // Without the top-level keys, the first entry's fields decide.
        let jrnl =
            json!({"entries": [{"title": "t", "body": "", "date": "2020-01-01", "time": "10:00"}]});
        assert_eq!(parse_json(jrnl, None).unwrap().format, Format::Jrnl);
        let dayone = json!({"entries": [{"creationDate": "2020-01-01T10:00:00Z", "text": "t"}]});
        assert_eq!(parse_json(dayone, None).unwrap().format, Format::DayOne);

        let unknown = parse_json(json!({"notes": [], "version": 2}), None).unwrap_err();
        assert!(
            matches!(unknown, ImportError::UnknownShape { .. }),
            "{unknown:?}"
        );
        let msg = unknown.to_string();
        assert!(msg.contains("\"notes\", \"version\""), "{msg}");
        assert!(msg.contains("--format"), "{msg}");
        assert_eq!(
            parse_json(json!({"tags": {}}), Some(Format::Jrnl)).unwrap_err(),
            ImportError::NoEntries {
                format: Format::Jrnl
            }
        );
        assert_eq!(
            parse_json(json!([1, 2]), None).unwrap_err(),
            ImportError::NotAnExport { found: "a list" }
        );
        let not_json = parse(b"{\"entries\": [}\n", None, &Utc).unwrap_err();
        assert_eq!(
            not_json,
            ImportError::NotJson {
                line: 1,
                column: 14
            }
        );
        assert!(!not_json.to_string().contains("expected value"));
        assert_eq!(
            parse(b"{\"entries\": [", None, &Utc).unwrap_err(),
            ImportError::CutOff
        );
        assert_eq!(
            parse(b"PK\x03\x04rest", None, &Utc).unwrap_err(),
            ImportError::Zip
        );
        assert_eq!(
            parse(b"{\"a\": \"\xff\"}", None, &Utc).unwrap_err(),
            ImportError::NotText
        );
        // A byte-order mark is tolerated.
        let bom = format!("\u{feff}{}", json!({"tags": {}, "entries": []}));
        assert_eq!(
            parse(bom.as_bytes(), None, &Utc).unwrap().format,
            Format::Jrnl
        );
    }

    #[test]
    fn attune_exports_keep_own_journal_entries_with_their_privacy() {
        let file = json!({"exported_at": 1, "me": "Alex", "partner": "Sam", "entries": [
            {"id": "00112233445566778899aabbccddeeff", "author": "me", "device": "ab".repeat(32),
             "at": 1_600_000_000_000_i64, "kind": "journal", "private": true, "pending": false,
             "edited": true, "deleted": false, "text": "mine, private\n\u{1b}[31m as typed"},
            {"id": "10112233445566778899aabbccddeeff", "author": "partner", "device": "cd".repeat(32),
             "at": 1_600_000_000_001_i64, "kind": "journal", "private": false, "text": "theirs"},
            {"id": "20112233445566778899aabbccddeeff", "author": "me", "at": 1, "kind": "checkin",
             "private": false},
            {"id": "30112233445566778899aabbccddeeff", "author": "me", "at": 1, "kind": "journal",
             "private": false, "deleted": true}
        ]});
        let p = parse_json(file, None).unwrap();
        assert_eq!(p.entries.len(), 2);
        let mine = &p.entries[0];
        assert_eq!(mine.text, "mine, private\n\u{1b}[31m as typed");
        assert_eq!(mine.private, Some(true));
        assert!(mine.mine);
        assert_eq!(mine.at, 1_600_000_000_000);
        assert_eq!(mine.device, Some(DeviceId([0xab; 32])));
        // The partner's entry is decided on with the roster, when importing.
        assert!(!p.entries[1].mine);
        assert_eq!(p.skipped.not_journal, 1);
        assert_eq!(p.skipped.deleted, 1);

        let bad = json!({"exported_at": 1, "entries": [
            {"id": "xyz", "author": "me", "at": 1, "kind": "journal", "private": false, "text": "a"},
            {"id": "00112233445566778899aabbccddeeff", "author": "them", "at": 1, "kind": "journal", "private": false, "text": "a"},
            {"id": "00112233445566778899aabbccddeeff", "author": "me", "at": "yesterday", "kind": "journal", "private": false, "text": "a"}
        ]});
        let err = parse_json(bad, None).unwrap_err().to_string();
        assert!(err.contains("entry 1: its \"id\" is \"xyz\""), "{err}");
        assert!(err.contains("entry 2: its \"author\" is \"them\""), "{err}");
        assert!(err.contains("entry 3: its \"at\" is a string"), "{err}");
    }

    #[test]
    fn quoted_values_are_inert_and_short() {
        let q = quoted(&Value::String(format!("\u{1b}]52;c;{}", "x".repeat(100))));
        assert!(!q.contains('\u{1b}'), "{q}");
        assert!(q.starts_with("\"\\u{1b}]52"), "{q}");
        assert!(q.ends_with('…'), "{q}");
        assert!(q.chars().count() < 60, "{q}");
    }

    #[test]
    fn the_source_of_an_entry_names_every_part_unambiguously() {
        let c = Candidate {
            position: 1,
            at: 5,
            text: "ab".into(),
            private: None,
            source_id: None,
            mine: true,
            device: None,
        };
        let mut moved = c.clone();
        moved.source_id = Some("a".into());
        moved.text = "b".into();
        assert_ne!(source_of(Format::Jrnl, &c), source_of(Format::Jrnl, &moved));
        assert_ne!(source_of(Format::Jrnl, &c), source_of(Format::DayOne, &c));
        let mut later = c.clone();
        later.at = 6;
        assert_ne!(source_of(Format::Jrnl, &c), source_of(Format::Jrnl, &later));
        assert_eq!(
            source_of(Format::Jrnl, &c),
            source_of(Format::Jrnl, &c.clone())
        );
    }
}
