//! Reading the history: `feed`, `show`, `export`.

use std::path::PathBuf;

use serde_json::json;

use attune_core::inert;
use attune_core::item::Body;
use attune_core::profile::{now_ms, ClientError, Entry, Profile};
use attune_core::query::{Feed, FeedQuery, Found};

use crate::args::{ExportFormat, FeedArgs};
use crate::common::{json_text, my_name, paired, partner_name, report_problems, write_private};
use crate::render::{describe_entry, entry_json, visible};
use crate::style::Style;
use crate::words;

/// Finds one of this member's entries by id or unique id prefix.
pub fn own_entry(p: &Profile, id: &str) -> Result<Entry, ClientError> {
    let e = p.find(id)?.entry;
    if !e.mine {
        return Err(ClientError::Input(
            "you can only change your own entries".into(),
        ));
    }
    if e.deleted {
        return Err(ClientError::Input("that entry is already deleted".into()));
    }
    Ok(e)
}

/// The engine's query for the feed's options.
fn feed_query(p: &Profile, args: &FeedArgs) -> Result<FeedQuery, ClientError> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| crate::timespec::parse_since(s, &chrono::Local::now()))
        .transpose()
        .map_err(ClientError::Input)?;
    let from = args
        .from
        .as_deref()
        .map(|who| crate::filters::resolve_author(who, &my_name(p), &partner_name(p)))
        .transpose()
        .map_err(ClientError::Input)?;
    Ok(FeedQuery {
        since_ms,
        from,
        kinds: args.kind.clone(),
        newest: args.newest.map(|n| n as usize),
    })
}

/// The filters given, as typed, for "nothing matches".
fn filters_given(args: &FeedArgs) -> String {
    let mut parts = vec![];
    if let Some(s) = &args.since {
        parts.push(format!("--since {}", inert::line(s)));
    }
    if let Some(f) = &args.from {
        parts.push(format!("--from {}", inert::line(f)));
    }
    if !args.kind.is_empty() {
        let kinds: Vec<&str> = args.kind.iter().map(|k| k.name()).collect();
        parts.push(format!("--kind {}", kinds.join(",")));
    }
    parts.join(" ")
}

/// How much of one item the feed shows before it points to `attune show`.
const FEED_MAX_LINES: usize = 12;
const FEED_MAX_CHARS: usize = 1000;

pub fn feed(home: &std::path::Path, args: FeedArgs) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let query = feed_query(&p, &args)?;
    let Feed { items, view, .. } = p.feed(&query)?;
    let entries: Vec<&Entry> = items.iter().collect();
    if args.json {
        let out = json!({
            "entries": entries.iter().map(|e| entry_json(e, &view.practice)).collect::<Vec<_>>(),
            "problems": view.problems,
        });
        outln!("{}", json_text(&out));
        return Ok(report_problems(&view.problems));
    }
    let s = Style::stdout();
    let partner = partner_name(&p);
    let mut out: Vec<String> = vec![];
    if entries.is_empty() {
        if query.is_filtered() {
            out.push(s.dim(&format!(
                "nothing matches {}; `attune feed` shows everything",
                filters_given(&args)
            )));
        } else {
            out.push(s.dim("nothing yet: `attune checkin` or `attune journal` to begin"));
        }
    }
    // A reflect-back loop shows as one thread under the item it is about.
    let shown: std::collections::HashSet<String> = entries.iter().map(|e| e.id.to_hex()).collect();
    let in_thread = |e: &Entry| {
        let root = match &e.item.body {
            Body::Reflect { target, .. } => Some(target.clone()),
            Body::Confirm { target } | Body::Correct { target, .. } => view
                .practice
                .threads
                .iter()
                .find(|t| t.rounds.iter().any(|r| r.id.to_hex() == *target))
                .map(|t| t.root.clone()),
            _ => None,
        };
        root.is_some_and(|r| shown.contains(&r))
    };
    for e in entries.iter().filter(|e| !in_thread(e)) {
        let line = describe_entry(e, &view.practice, &s, &partner);
        match crate::pager::clip(&line, FEED_MAX_LINES, FEED_MAX_CHARS) {
            None => out.push(line),
            Some(cut) => {
                out.push(cut);
                out.push(s.dim(&format!(
                    "  (cut here: `attune show {}` shows all of it)",
                    &e.id.to_hex()[..8]
                )));
            }
        }
        if let Some(t) = view
            .practice
            .threads
            .iter()
            .find(|t| t.root == e.id.to_hex())
        {
            for line in crate::render::thread_lines(t, &s, &partner) {
                let line =
                    crate::pager::clip(&line, FEED_MAX_LINES, FEED_MAX_CHARS).unwrap_or(line);
                out.push(format!("    {line}"));
            }
        }
    }
    crate::pager::print(&out.join("\n"));
    Ok(report_problems(&view.problems))
}

pub fn show(home: &std::path::Path, id: &str, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    if let Some(h) = p.find_held(id)? {
        return super::held::show(&h, json_out);
    }
    let Found { entry: e, view } = p.find(id)?;
    if json_out {
        outln!("{}", json_text(&entry_json(&e, &view.practice)));
    } else {
        let s = Style::stdout();
        crate::pager::print(&format!(
            "{}\n{}",
            describe_entry(&e, &view.practice, &s, &partner_name(&p)),
            s.dim(&format!(
                "id {}  device {}",
                e.id.to_hex(),
                e.author.to_hex()
            ))
        ));
    }
    Ok(0)
}

pub fn export(
    home: &std::path::Path,
    format: ExportFormat,
    out: Option<PathBuf>,
) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let partner = partner_name(&p);
    let (text, items) = match format {
        ExportFormat::Json => {
            let entries: Vec<_> = view
                .entries
                .iter()
                .filter(|e| visible(e))
                .map(|e| entry_json(e, &view.practice))
                .collect();
            let items = entries.len();
            let doc = json!({
                "exported_at": now_ms(),
                "me": p.name(),
                "partner": partner,
                "entries": entries,
            });
            (json_text(&doc), items)
        }
        ExportFormat::Markdown => {
            let md = crate::export::markdown(&view, &p.name(), &partner);
            (md.text, md.items)
        }
    };
    match out {
        Some(path) => {
            write_private(&path, text.as_bytes())?;
            eprintln!(
                "wrote {} to {}",
                words::count(items as u64, "item", "items"),
                path.display()
            );
        }
        None => outln!("{text}"),
    }
    Ok(0)
}
