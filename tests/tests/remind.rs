//! `attune remind`: installs a daily reminder with the user's scheduler (a
//! systemd user timer, or a crontab line) and removes it; when it fires with no
//! notification service, the next command prints it once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use attune_tests::{bin, Attune, Couple};

/// Fake `crontab` and `systemctl` that keep their state in `dir/state`.
fn fake_tools(dir: &Path) -> String {
    let bin_dir = dir.join("bin");
    let state = dir.join("state");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let scripts = [
        (
            "crontab",
            format!(
                "#!/bin/sh\nif [ \"$1\" = \"-l\" ]; then\n  [ -f '{s}/crontab' ] || {{ echo 'no crontab for you' >&2; exit 1; }}\n  cat '{s}/crontab'\nelif [ \"$1\" = \"-\" ]; then\n  cat > '{s}/crontab'\nfi\n",
                s = state.display()
            ),
        ),
        (
            "systemctl",
            format!(
                "#!/bin/sh\necho \"$*\" >> '{s}/systemctl.log'\n",
                s = state.display()
            ),
        ),
    ];
    for (name, body) in scripts {
        let p = bin_dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn with(who: &Attune, vars: &[(&str, String)]) -> Attune {
    let mut w = who.clone();
    for (k, v) in vars {
        w.env.push((k.to_string(), v.clone()));
    }
    w
}

#[test]
fn a_crontab_line_is_added_replaced_and_removed_leaving_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_tools(dir.path());
    let state = dir.path().join("state");
    std::fs::write(state.join("crontab"), "0 3 * * * backup-my-photos\n").unwrap();
    let a = Attune::new(&dir.path().join("a"));
    a.init("Alex");
    let a = with(
        &a,
        &[("PATH", path), ("ATTUNE_REMIND_SCHEDULER", "cron".into())],
    );
    let run = a.run(&["remind", "at", "21:30"]).ok();
    assert!(run.stdout.contains("reminder set for 21:30"), "{run:?}");
    let table = std::fs::read_to_string(state.join("crontab")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(lines[0], "0 3 * * * backup-my-photos");
    let home = a.home.display().to_string();
    assert!(
        lines[1].starts_with("30 21 * * * '")
            && lines[1].contains(&format!(
                "'--home' '{home}' 'remind' 'fire' # attune-remind-"
            )),
        "{table}"
    );
    assert!(
        lines[1].contains(&bin("attune").display().to_string()),
        "{table}"
    );
    // A new time replaces the line.
    a.run(&["remind", "at", "7:05"]).ok();
    let table = std::fs::read_to_string(state.join("crontab")).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("\n5 7 * * * "), "{table}");
    // Nonsense is refused, and says what it takes.
    let bad = a.run(&["remind", "at", "9pm"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("e.g. 21:00"), "{bad:?}");
    a.run(&["remind", "off"]).ok();
    let table = std::fs::read_to_string(state.join("crontab")).unwrap();
    assert_eq!(table, "0 3 * * * backup-my-photos\n");
    let again = a.run(&["remind", "off"]).ok();
    assert!(again.stdout.contains("no reminder was set"), "{again:?}");
}

#[test]
fn a_systemd_user_timer_is_installed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_tools(dir.path());
    let config = dir.path().join("config");
    let a = Attune::new(&dir.path().join("a"));
    a.init("Alex");
    let a = with(
        &a,
        &[
            ("PATH", path),
            ("ATTUNE_REMIND_SCHEDULER", "systemd".into()),
            ("XDG_CONFIG_HOME", config.display().to_string()),
        ],
    );
    a.run(&["remind", "at", "21:00"]).ok();
    let units = config.join("systemd/user");
    let names: Vec<String> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let timer = names
        .iter()
        .find(|n| n.ends_with(".timer"))
        .unwrap()
        .clone();
    let service = timer.replace(".timer", ".service");
    assert!(names.contains(&service), "{names:?}");
    let t = std::fs::read_to_string(units.join(&timer)).unwrap();
    assert!(t.contains("OnCalendar=*-*-* 21:00:00"), "{t}");
    let s = std::fs::read_to_string(units.join(&service)).unwrap();
    assert!(
        s.contains("'remind' 'fire'") && s.contains("Type=oneshot"),
        "{s}"
    );
    let log = std::fs::read_to_string(dir.path().join("state/systemctl.log")).unwrap();
    assert!(
        log.contains(&format!("--user enable --now {timer}")),
        "{log}"
    );
    a.run(&["remind", "off"]).ok();
    assert_eq!(std::fs::read_dir(&units).unwrap().count(), 0);
    let log = std::fs::read_to_string(dir.path().join("state/systemctl.log")).unwrap();
    assert!(
        log.contains(&format!("--user disable --now {timer}")),
        "{log}"
    );
}

#[test]
fn a_reminder_with_nowhere_to_show_waits_for_the_next_command_once() {
    let c = Couple::new(&[]);
    let a = with(&c.a, &[("ATTUNE_NOTIFY", "off".into())]);
    a.run(&["remind", "fire"]).ok();
    let next = a.run(&["status"]).ok();
    assert!(
        next.stderr.contains("reminder: your daily check-in"),
        "{next:?}"
    );
    let after = a.run(&["status"]).ok();
    assert!(!after.stderr.contains("reminder:"), "{after:?}");
    // Nothing due: no reminder at all.
    a.run(&["checkin", "--open", "--mood", "6"]).ok();
    a.run(&["remind", "fire"]).ok();
    assert!(!a.home.join("remind-pending").exists());
}
