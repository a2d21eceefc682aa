//! `attune import FILE`: journal entries from attune's own JSON export, jrnl or
//! Day One, written at their original times (the engine's `import` reads and
//! writes; this reads the file and says what happened).

use std::io::Read;
use std::path::Path;

use attune_core::import::{self, ImportError, Options, Parsed, Report, Status};
use attune_core::inert;
use attune_core::profile::{io_err, ClientError};

use crate::args::ImportArgs;
use crate::common::{json_text, paired, partner_name, try_push};
use crate::render::when;
use crate::style::Style;
use crate::words::count;

/// How much of an entry's first line a dry run shows.
const PREVIEW_CHARS: usize = 60;

/// The file's bytes, refused past `import::MAX_FILE_BYTES` before reading.
fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ClientError::Input(format!(
                "there is no file {}: give the path of the export's .json file",
                path.display()
            )))
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let meta = file.metadata().map_err(io_err(path))?;
    if meta.is_dir() {
        return Err(ClientError::Input(format!(
            "{} is a directory: give the export's .json file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(import::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > import::MAX_FILE_BYTES {
        return Err(ClientError::Input(format!(
            "{} is larger than {} MiB, more than an export of text should be: split it (by year, say) and import each part",
            path.display(),
            import::MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// Says why `path` cannot be imported, an entry a line (the exit code is 1).
fn refuse(path: &Path, e: &ImportError) -> i32 {
    let text = e.to_string();
    let mut lines = text.lines();
    eprintln!(
        "attune: cannot import {}: {}",
        inert::line(&path.display().to_string()),
        inert::line(lines.next().unwrap_or_default())
    );
    for line in lines {
        // Each line quotes the file only through `inert` already; once more
        // costs nothing and keeps every line of it on its own line.
        eprintln!("{}", inert::line(line));
    }
    1
}

pub async fn import(home: &Path, args: ImportArgs) -> Result<i32, ClientError> {
    let bytes = read_file(&args.file)?;
    // The file is read before the profile is opened: a wrong file is said at
    // once, without a passphrase.
    let parsed = match import::parse(&bytes, args.format.map(Into::into), &chrono::Local) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(refuse(&args.file, &e)),
    };
    let mut p = paired(home)?;
    let options = Options {
        private: match (args.private, args.shared) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        dry_run: args.dry_run,
    };
    let plan = import::plan(&p, &parsed, &options)?;
    if let Some(e) = plan.problem() {
        return Ok(refuse(&args.file, &e));
    }
    let report = if args.dry_run {
        plan.dry_run()
    } else {
        plan.write(&mut p)?
    };
    if args.json {
        outln!("{}", json_text(&report));
    } else {
        if report.dry_run {
            let s = Style::stdout();
            for line in dry_run_lines(&report, &parsed, &s) {
                outln!("{line}");
            }
        }
        outln!("{}", summary(&report, &partner_name(&p)));
    }
    if !report.dry_run && report.imported > 0 {
        try_push(&mut p).await;
    }
    Ok(0)
}

/// One line per entry a dry run would import: when, privacy, its first line.
fn dry_run_lines(report: &Report, parsed: &Parsed, s: &Style) -> Vec<String> {
    report
        .entries
        .iter()
        .filter(|o| o.status == Status::WouldImport)
        .filter_map(|o| {
            let c = parsed.entries.iter().find(|c| c.position == o.entry)?;
            let first = c.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let mut preview: String = first.trim().chars().take(PREVIEW_CHARS).collect();
            if preview.len() < first.trim().len() || c.text.trim().lines().nth(1).is_some() {
                preview.push('…');
            }
            Some(format!(
                "  {}  {:<7}  {}",
                s.dim(&when(o.at)),
                if o.private { "private" } else { "shared" },
                inert::line(&preview)
            ))
        })
        .collect()
}

/// The one-line account of an import: "3 imported, 1 already here (jrnl,
/// private); skipped 1 without text".
pub fn summary(r: &Report, partner: &str) -> String {
    let mut line = if r.dry_run {
        format!(
            "dry run: {} would be imported, {} already here",
            r.imported, r.already_here
        )
    } else {
        format!("{} imported, {} already here", r.imported, r.already_here)
    };
    let privacy = match (r.private, r.shared) {
        (0, 0) => None,
        (_, 0) => Some("private".to_string()),
        (0, _) => Some(format!("shared with {partner}")),
        (p, s) => Some(format!("{p} private, {s} shared")),
    };
    match privacy {
        Some(p) => line.push_str(&format!(" ({}, {p})", r.format.name())),
        None => line.push_str(&format!(" ({})", r.format.name())),
    }
    let k = &r.skipped;
    let mut skipped = vec![];
    if k.without_text > 0 {
        skipped.push(format!("{} without text", k.without_text));
    }
    if k.partner > 0 {
        skipped.push(format!(
            "{} by {partner} (only the one who wrote an entry can import it)",
            count(k.partner, "entry", "entries")
        ));
    }
    if k.not_journal > 0 {
        skipped.push(count(
            k.not_journal,
            "item that is not a journal entry",
            "items that are not journal entries",
        ));
    }
    if k.deleted > 0 {
        skipped.push(format!("{} deleted", k.deleted));
    }
    if !skipped.is_empty() {
        line.push_str("; skipped ");
        line.push_str(&skipped.join(", "));
    }
    if r.dry_run {
        line.push_str("; nothing was written");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::import::{Format, Skipped};

    fn report() -> Report {
        Report {
            format: Format::Jrnl,
            dry_run: false,
            imported: 3,
            already_here: 1,
            private: 3,
            shared: 0,
            skipped: Skipped::default(),
            entries: vec![],
        }
    }

    #[test]
    fn the_summary_counts_what_was_imported_and_what_was_here() {
        assert_eq!(
            summary(&report(), "Sam"),
            "3 imported, 1 already here (jrnl, private)"
        );
        let mut r = report();
        r.format = Format::Attune;
        r.private = 1;
        r.shared = 2;
        r.skipped = Skipped {
            without_text: 0,
            partner: 4,
            not_journal: 1,
            deleted: 2,
        };
        assert_eq!(
            summary(&r, "Sam"),
            "3 imported, 1 already here (attune, 1 private, 2 shared); skipped 4 entries by Sam (only the one who wrote an entry can import it), 1 item that is not a journal entry, 2 deleted"
        );
        let mut r = report();
        r.format = Format::DayOne;
        r.dry_run = true;
        r.imported = 2;
        r.private = 0;
        r.shared = 2;
        r.skipped.without_text = 1;
        assert_eq!(
            summary(&r, "Sam"),
            "dry run: 2 would be imported, 1 already here (Day One, shared with Sam); skipped 1 without text; nothing was written"
        );
        let mut r = report();
        r.imported = 0;
        r.private = 0;
        r.already_here = 5;
        assert_eq!(summary(&r, "Sam"), "0 imported, 5 already here (jrnl)");
    }
}
