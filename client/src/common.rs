//! What every command shares: opening a paired profile, sending quietly,
//! reporting integrity problems, names and JSON as they may be printed.

use std::io::Write;

use attune_core::inert;
use attune_core::profile::{ClientError, Problem, Profile};
use attune_core::sync;

use crate::prompts::Terminal;
use crate::style::Style;

/// Exit code when integrity problems were found (a script must notice).
pub const EXIT_INTEGRITY: i32 = 3;

pub fn paired(home: &std::path::Path) -> Result<Profile, ClientError> {
    let p = Profile::open_with(home, &mut Terminal)?;
    if !p.is_paired() {
        return Err(ClientError::NotPaired);
    }
    Ok(p)
}

/// Sends the outbox if the relay is reachable; a relay that is down is a warning.
pub async fn try_push(p: &mut Profile) {
    match sync::push(p).await.map_err(|e| p.explain_gone(e)) {
        Ok(_) => {}
        Err(e @ ClientError::SpaceErased { .. }) => {
            eprintln!(
                "warning: kept on this device only: {}",
                inert::line(&e.to_string())
            );
        }
        Err(ClientError::Relay(e)) => {
            eprintln!(
                "warning: not sent yet ({}); it waits in the outbox and goes with the next `attune sync`",
                inert::line(&e.to_string())
            );
        }
        Err(e) => eprintln!("warning: not sent yet: {}", inert::line(&e.to_string())),
    }
}

/// Opens the paired profile for a command that writes, after a sync, so what it
/// writes sees the newest state. Every writing command talks to the relay in
/// one pattern (a sync, the write, a sync that sends it: PROTOCOL.md §13), so
/// the requests do not say what was written.
pub async fn writing(home: &std::path::Path) -> Result<Profile, ClientError> {
    let mut p = paired(home)?;
    // Quiet: if the relay cannot be reached, the sync after the write says so.
    let _ = sync::sync(&mut p, &mut attune_core::ui::Quiet).await;
    Ok(p)
}

/// Sends what a command wrote: a full sync, the second half of [`writing`].
pub async fn send(p: &mut Profile) {
    try_sync(p).await;
}

/// A full sync for a command that writes (before, to see what the partner
/// sent; after, to send and to open what can be opened). Unreachable: says so
/// and carries on offline.
pub async fn try_sync(p: &mut Profile) -> Option<sync::SyncReport> {
    match sync::sync(p, &mut attune_core::ui::Quiet)
        .await
        .map_err(|e| p.explain_gone(e))
    {
        Ok(r) => Some(r),
        Err(e @ ClientError::SpaceErased { .. }) => {
            eprintln!(
                "warning: kept on this device only: {}",
                inert::line(&e.to_string())
            );
            None
        }
        Err(ClientError::Relay(e)) => {
            eprintln!(
                "warning: could not reach the relay ({}): working offline; what you write is not sent yet, it waits in the outbox and goes with the next `attune sync`",
                inert::line(&e.to_string())
            );
            None
        }
        Err(e) => {
            eprintln!("warning: sync failed: {}", inert::line(&e.to_string()));
            None
        }
    }
}

/// Prints the exchanges a sync opened, one line each.
pub fn print_opened(report: &sync::SyncReport, partner: &str) {
    let s = Style::stdout();
    for x in &report.opened {
        outln!("{}", crate::render::opened_line(x, partner, &s));
    }
}

pub fn report_problems(problems: &[Problem]) -> i32 {
    if problems.is_empty() {
        return 0;
    }
    let s = Style::stdout();
    eprintln!(
        "{}",
        s.bad(&format!(
            "{} in what the relay served:",
            crate::words::count(
                problems.len() as u64,
                "integrity problem",
                "integrity problems"
            )
        ))
    );
    for p in problems {
        eprintln!(
            "  {} {}",
            s.bad(&format!("[{}]", inert::line(&p.kind))),
            inert::line(&p.detail)
        );
    }
    eprintln!("Nothing affected is shown as genuine. The relay (or the network) may be tampering.");
    EXIT_INTEGRITY
}

/// The partner's name as it may be printed: inert, on one line (a name stored
/// before names were checked, or by a modified client, may carry anything).
pub fn partner_name(p: &Profile) -> String {
    p.partner_name()
        .ok()
        .flatten()
        .map(|n| inert::line(&n).into_owned())
        .unwrap_or_else(|| "partner".into())
}

/// This device's name as it may be printed.
pub fn my_name(p: &Profile) -> String {
    inert::line(&p.name()).into_owned()
}

/// JSON for the terminal or a file: pretty, with every character a terminal
/// acts on written as a `\uXXXX` escape (the decoded value is unchanged).
pub fn json_text(v: &impl serde::Serialize) -> String {
    inert::json(serde_json::to_string_pretty(v).unwrap_or_default())
}

/// Writes decrypted content to `path`, readable by the owner only: a new
/// owner-only file in the same directory, renamed over `path`, so an existing
/// file's wider permissions (or a reader holding it open) never see the content,
/// and no partial file is left behind. A symlink is written through to its
/// target; a stream that is not a file (a pipe, `/dev/stdout`) is written as it is.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), ClientError> {
    let io = attune_core::profile::io_err;
    let path = match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return std::fs::write(path, bytes).map_err(io(path)),
        Ok(_) => std::fs::canonicalize(path).map_err(io(path))?,
        Err(_) => path.to_path_buf(),
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    // tempfile creates its files with mode 0600 on unix.
    let mut file = tempfile::Builder::new()
        .prefix(".attune-")
        .tempfile_in(dir)
        .map_err(attune_core::profile::io_err(path))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(attune_core::profile::io_err(path))?;
    file.persist(path)
        .map_err(|e| attune_core::profile::io_err(path)(e.error))?;
    Ok(())
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Recent changes to either partner's devices, one sentence each ("Sam added a
/// device 'laptop' on …"): nobody's devices change without both being told.
pub fn device_lines(p: &Profile, since_ms: i64) -> Vec<String> {
    let partner = partner_name(p);
    p.device_events(since_ms)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let who = if e.mine { "you" } else { partner.as_str() };
            let name = match (&e.name, e.change) {
                (
                    Some(n),
                    attune_core::item::DeviceChange::Added
                    | attune_core::item::DeviceChange::Revoked,
                ) => {
                    format!(" '{}'", inert::line(n))
                }
                _ => String::new(),
            };
            format!(
                "{who} {}{name} on {}",
                e.change.describe(),
                crate::render::when(e.at)
            )
        })
        .collect()
}

/// The same changes as JSON.
pub fn device_json(p: &Profile, since_ms: i64) -> serde_json::Value {
    serde_json::Value::Array(
        p.device_events(since_ms)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": e.at,
                    "by": if e.mine { "me" } else { "partner" },
                    "change": e.change,
                    "device": e.device.to_hex(),
                    "name": e.name,
                })
            })
            .collect(),
    )
}
