//! `attune remind`: a daily reminder at a chosen time, run by the user's own
//! scheduler (a systemd user timer where a systemd user session runs, else a
//! crontab line). When it fires it shows a desktop notification if one can be
//! shown; otherwise the next `attune` command in a terminal prints it.
//!
//! Notifications never carry content (a lock screen may show them): only what
//! is due, in attune's own words.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use attune_core::insights::due_today;
use attune_core::practice::day_of;
use attune_core::profile::{now_ms, ClientError, Profile};

use crate::common::DAY_MS;

/// Where a reminder that could not be shown waits for the next command.
const PENDING: &str = "remind-pending";

/// The scheduler a reminder is installed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheduler {
    Systemd,
    Cron,
}

fn io(what: &str, e: std::io::Error) -> ClientError {
    ClientError::Input(format!("{what}: {e}"))
}

/// systemd where a user session answers, else cron where `crontab` runs.
/// `ATTUNE_REMIND_SCHEDULER` (systemd or cron) chooses, for tests and for
/// people with both.
fn detect() -> Result<Scheduler, ClientError> {
    match std::env::var("ATTUNE_REMIND_SCHEDULER").ok().as_deref() {
        Some("systemd") => return Ok(Scheduler::Systemd),
        Some("cron") => return Ok(Scheduler::Cron),
        _ => {}
    }
    let quiet = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if quiet("systemctl", &["--user", "show-environment"]) {
        return Ok(Scheduler::Systemd);
    }
    let crontab_runs = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if crontab_runs {
        return Ok(Scheduler::Cron);
    }
    Err(ClientError::Input(
        "neither a systemd user session nor crontab is available here: run `attune remind fire` from your own scheduler at the time you like".into(),
    ))
}

/// A name for this profile's reminder, stable across runs.
fn unit_name(home: &Path) -> String {
    let h =
        attune_proto::ids::hash_labelled(b"attune/remind", &[home.to_string_lossy().as_bytes()]);
    format!("attune-remind-{}", &hex::encode(h.0)[..8])
}

fn unit_dir() -> Result<PathBuf, ClientError> {
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("systemd/user"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ClientError::Input("HOME is not set: cannot find the systemd user directory".into())
        })?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

/// The command the scheduler runs, with this binary and this profile.
fn fire_command(home: &Path) -> Result<Vec<String>, ClientError> {
    let exe = std::env::current_exe().map_err(|e| io("cannot find the attune binary", e))?;
    Ok(vec![
        exe.to_string_lossy().into_owned(),
        "--home".into(),
        home.to_string_lossy().into_owned(),
        "remind".into(),
        "fire".into(),
    ])
}

fn run(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, ClientError> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().map_err(|e| io(&format!("cannot run {cmd}"), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| io(&format!("cannot write to {cmd}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| io(&format!("{cmd} did not finish"), e))?;
    if !out.status.success() {
        return Err(ClientError::Input(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            attune_core::inert::line(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The user's crontab without this profile's line (none if they have none yet).
fn crontab_without(marker: &str) -> String {
    let current = run("crontab", &["-l"], None).unwrap_or_default();
    current
        .lines()
        .filter(|l| !l.contains(marker))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// `attune remind at HH:MM`.
pub fn at(home: &Path, time: &str) -> Result<i32, ClientError> {
    let t = chrono::NaiveTime::parse_from_str(time.trim(), "%H:%M").map_err(|_| {
        ClientError::Input(format!(
            "`{}` is not a time of day: give hours and minutes, e.g. 21:00",
            attune_core::inert::line(time)
        ))
    })?;
    use chrono::Timelike;
    let (h, m) = (t.hour(), t.minute());
    let name = unit_name(home);
    let cmd = fire_command(home)?;
    match detect()? {
        Scheduler::Systemd => {
            let dir = unit_dir()?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| io("cannot create the systemd user directory", e))?;
            let exec: Vec<String> = cmd.iter().map(|a| quote(a)).collect();
            let service = format!(
                "[Unit]\nDescription=attune: the evening reminder\n\n[Service]\nType=oneshot\nExecStart={}\n",
                exec.join(" ")
            );
            let timer = format!(
                "[Unit]\nDescription=attune: the evening reminder at {h:02}:{m:02}\n\n[Timer]\nOnCalendar=*-*-* {h:02}:{m:02}:00\nPersistent=false\n\n[Install]\nWantedBy=timers.target\n"
            );
            std::fs::write(dir.join(format!("{name}.service")), service)
                .map_err(|e| io("cannot write the reminder's service", e))?;
            std::fs::write(dir.join(format!("{name}.timer")), timer)
                .map_err(|e| io("cannot write the reminder's timer", e))?;
            run("systemctl", &["--user", "daemon-reload"], None)?;
            run(
                "systemctl",
                &["--user", "enable", "--now", &format!("{name}.timer")],
                None,
            )?;
            outln!("reminder set for {h:02}:{m:02} every day (systemd user timer {name}.timer); `attune remind off` removes it");
        }
        Scheduler::Cron => {
            let exec: Vec<String> = cmd.iter().map(|a| quote(a)).collect();
            let mut table = crontab_without(&name);
            table.push_str(&format!("{m} {h} * * * {} # {name}\n", exec.join(" ")));
            run("crontab", &["-"], Some(&table))?;
            outln!("reminder set for {h:02}:{m:02} every day (a line in your crontab); `attune remind off` removes it");
        }
    }
    Ok(0)
}

/// `attune remind off`.
pub fn off(home: &Path) -> Result<i32, ClientError> {
    let name = unit_name(home);
    match detect()? {
        Scheduler::Systemd => {
            let dir = unit_dir()?;
            let timer = dir.join(format!("{name}.timer"));
            if !timer.exists() {
                outln!("no reminder was set");
                return Ok(0);
            }
            // Already stopped or never loaded is fine: the files go either way.
            let _ = run(
                "systemctl",
                &["--user", "disable", "--now", &format!("{name}.timer")],
                None,
            );
            for f in [timer, dir.join(format!("{name}.service"))] {
                match std::fs::remove_file(&f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("cannot remove the reminder", e)),
                }
            }
            let _ = run("systemctl", &["--user", "daemon-reload"], None);
        }
        Scheduler::Cron => {
            let current = run("crontab", &["-l"], None).unwrap_or_default();
            if !current.contains(&name) {
                outln!("no reminder was set");
                return Ok(0);
            }
            run("crontab", &["-"], Some(&crontab_without(&name)))?;
        }
    }
    outln!("reminder removed");
    Ok(0)
}

/// What the reminder says: what is due, if the profile opens without a
/// passphrase (no passphrase, or unlocked); else the check-in, generically.
fn due_text(home: &Path) -> Option<String> {
    let Ok(p) = Profile::open(home) else {
        return Some("time for your evening check-in".into());
    };
    let partner = p
        .partner_name()
        .ok()
        .flatten()
        .map(|n| attune_core::inert::line(&n).into_owned())
        .unwrap_or_else(|| "your partner".into());
    let now = now_ms();
    let view = p.view_since(now - 2 * DAY_MS).ok()?;
    let due = due_today(&view, &partner, &day_of(now), now, None).due;
    let first = due.first()?;
    Some(if due.len() > 1 {
        format!(
            "{} (and {} more: `attune today`)",
            first.reason,
            due.len() - 1
        )
    } else {
        first.reason.clone()
    })
}

/// `attune remind fire`, what the scheduler runs.
pub fn fire(home: &Path) -> Result<i32, ClientError> {
    let Some(text) = due_text(home) else {
        return Ok(0);
    };
    if crate::notify::show("attune", &text) {
        return Ok(0);
    }
    // No notification service (a server, a bare terminal): the next command
    // in a terminal says it.
    crate::common::write_private(&home.join(PENDING), text.as_bytes())?;
    Ok(0)
}

/// Prints a reminder that waited for a terminal, once.
pub fn show_pending(home: &Path) {
    let path = home.join(PENDING);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if std::fs::remove_file(&path).is_ok() {
            eprintln!("reminder: {}", attune_core::inert::line(text.trim()));
        }
    }
}
