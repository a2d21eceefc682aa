//! `attune unlock` / `attune lock`: the passphrase once, then commands with no
//! passphrase and no terminal through the agent; its socket is the owner's only,
//! the keys never reach the disk unencrypted, the agent ends at `lock`, at its
//! time limit and when the keystore is sealed under another passphrase, a stale
//! socket is ignored, and a wrong passphrase unlocks nothing.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use attune_crypto::{
    open_keystore, seal_keystore, write_keystore_file, KdfParams, KeystoreContents, Protection,
};
use attune_tests::{leaks, pair, Attune, Relay};

const PASS: &str = "plum orchard at dusk";

/// The profile with `ATTUNE_PASSPHRASE` set (for `init`, `unlock`, pairing).
fn with_pass(a: &Attune, pass: &str) -> Attune {
    let mut a = a.clone();
    a.env.push(("ATTUNE_PASSPHRASE".into(), pass.into()));
    a
}

/// A passphrase-locked profile in `dir/name` (no ATTUNE_PASSPHRASE in its env).
fn locked_profile(dir: &Path, name: &str) -> Attune {
    let a = Attune::new(&dir.join(name));
    with_pass(&a, PASS).run(&["init", "--name", name]).ok();
    a
}

/// The pids of the agents serving `home` (from /proc: the hidden command line).
fn agent_pids(home: &Path) -> Vec<u32> {
    let home = std::path::absolute(home).unwrap();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.iter().any(|a| *a == b"agent-serve")
            && args
                .iter()
                .any(|a| *a == home.as_os_str().as_encoded_bytes())
        {
            // A zombie (exited, not yet reaped) is not running.
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            if !state.starts_with('Z') {
                out.push(pid);
            }
        }
    }
    out
}

/// Kills whatever agent still serves `home` when the test ends, pass or fail.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in agent_pids(&self.0) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn the_agent(home: &Path) -> u32 {
    let pids = agent_pids(home);
    assert_eq!(
        pids.len(),
        1,
        "exactly one agent for {}: {pids:?}",
        home.display()
    );
    pids[0]
}

fn socket(home: &Path) -> PathBuf {
    home.join("agent.sock")
}

/// `status` that needs the keys, with no passphrase and no terminal, fails
/// asking for the passphrase.
fn assert_asks_for_passphrase(a: &Attune) {
    let run = a.run(&["status"]);
    assert_ne!(run.code, 0, "status ran without the keys: {}", run.stdout);
    assert!(
        run.stderr.contains("passphrase") && run.stderr.contains("ATTUNE_PASSPHRASE"),
        "{}",
        run.stderr
    );
}

/// Every secret of the keystore (device signing and exchange keys, every space
/// key), as the test opens it with the passphrase.
fn secrets(home: &Path, pass: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(home.join("keystore.attune")).unwrap();
    let contents = open_keystore(&bytes, Some(pass.as_bytes())).unwrap();
    let plain = seal_keystore(&contents, Protection::Unprotected).unwrap();
    // magic 8 | version | mode | contents version | sign seed 32 | exchange 32 | ...
    let mut out = vec![plain[11..43].to_vec(), plain[43..75].to_vec()];
    for id in contents.keys.ids() {
        out.push(contents.keys.get(id).unwrap().expose().to_vec());
    }
    out
}

/// No file under `home` holds any of `secrets` raw or in hex.
fn assert_no_secret_on_disk(home: &Path, secrets: &[Vec<u8>], when: &str) {
    for (path, bytes) in leaks::files_under(home) {
        for s in secrets {
            for form in [
                s.clone(),
                hex::encode(s).into_bytes(),
                hex::encode_upper(s).into_bytes(),
            ] {
                assert!(
                    !leaks::contains(&bytes, &form),
                    "{when}: a key is in {} unencrypted",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn unlock_once_then_commands_need_no_passphrase_until_lock() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());
    let b = Attune::new(&dir.path().join("Sam"));
    b.init("Sam");

    // Locked: no passphrase, no terminal, no keys.
    assert_asks_for_passphrase(&a);

    // The passphrase once, for `unlock` only.
    let run = with_pass(&a, PASS).run(&["unlock"]).ok();
    assert!(run.stdout.contains("unlocked for 8h"), "{}", run.stdout);
    let pid = the_agent(&a.home);

    // The socket is the owner's only, in the owner's only directory.
    let meta = std::fs::symlink_metadata(socket(&a.home)).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let home_mode = std::fs::metadata(&a.home).unwrap().permissions().mode();
    assert_eq!(home_mode & 0o777, 0o700);

    // Detached: its own process group (Ctrl-C at the terminal does not reach it),
    // and the passphrase is not in its environment.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[2],
        pid.to_string(),
        "the agent leads its own process group"
    );
    // (Only root reads it: the agent is not dumpable. Anyone else is refused,
    // which keeps the environment private too.)
    let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Vec::new(),
        Err(e) => panic!("reading the agent's environment: {e}"),
    };
    assert!(
        !leaks::contains(&environ, PASS.as_bytes()),
        "the passphrase is in the agent's environment"
    );
    assert!(!leaks::contains(&environ, b"ATTUNE_PASSPHRASE"));

    // Now without a passphrase or terminal: status, and pairing, which adds the
    // space keys and seals the keystore again through the agent's key.
    a.run(&["status"]).ok();
    pair(&a, &b, &relay.url);
    let status = a.run(&["status", "--json"]).ok();
    assert!(status.stdout.contains("Sam"), "{}", status.stdout);
    a.run(&["journal", "-m", "written while unlocked"]).ok();
    a.run(&["sync"]).ok();
    b.run(&["sync"]).ok();
    let feed = b.run(&["feed"]).ok();
    assert!(
        feed.stdout.contains("written while unlocked"),
        "{}",
        feed.stdout
    );
    assert_eq!(agent_pids(&a.home), vec![pid], "one agent throughout");

    // The keystore still opens with the passphrase, and now holds the space keys.
    let secrets = secrets(&a.home, PASS);
    assert!(
        secrets.len() >= 4,
        "device keys and space keys: {}",
        secrets.len()
    );

    // The keys never touch the disk unencrypted: after unlock, and while
    // commands run through the agent.
    assert_no_secret_on_disk(&a.home, &secrets, "unlocked");
    let mut running: Vec<_> = (0..4)
        .map(|i| {
            let args = if i % 2 == 0 {
                vec!["status"]
            } else {
                vec!["feed", "--json"]
            };
            a.command(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    while running.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert_no_secret_on_disk(&a.home, &secrets, "while commands run");
    }
    for mut c in running {
        assert!(c.wait().unwrap().success());
    }

    // Lock: the agent forgets and exits, its socket goes, and commands ask again.
    let run = a.run(&["lock"]).ok();
    assert!(run.stdout.contains("locked"), "{}", run.stdout);
    wait_until("the agent exits after lock", Duration::from_secs(5), || {
        agent_pids(&a.home).is_empty()
    });
    assert!(!socket(&a.home).exists());
    assert_asks_for_passphrase(&a);
    assert_no_secret_on_disk(&a.home, &secrets, "locked");
    let run = a.run(&["lock"]).ok();
    assert!(
        run.stdout.contains("nothing was unlocked"),
        "{}",
        run.stdout
    );
    with_pass(&a, PASS).run(&["status"]).ok();
}

#[test]
fn the_agent_ends_at_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());
    let run = with_pass(&a, PASS).run(&["unlock", "--for", "2s"]).ok();
    assert!(run.stdout.contains("unlocked for 2s"), "{}", run.stdout);
    let started = Instant::now();
    the_agent(&a.home);
    a.run(&["status"]).ok();
    wait_until(
        "the agent exits at its time limit",
        Duration::from_secs(10),
        || agent_pids(&a.home).is_empty(),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it ended early"
    );
    assert!(!socket(&a.home).exists(), "the socket is removed");
    assert_asks_for_passphrase(&a);
}

#[test]
fn a_wrong_passphrase_unlocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());

    let run = with_pass(&a, "not the passphrase").run(&["unlock"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    // No passphrase and no terminal: refused, saying how to give one.
    let run = a.run(&["unlock"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("ATTUNE_PASSPHRASE"), "{}", run.stderr);
    assert!(agent_pids(&a.home).is_empty());
    assert!(!socket(&a.home).exists());
    assert_asks_for_passphrase(&a);
}

/// At a terminal (a pty through `script`): three tries, then nothing is unlocked;
/// the right passphrase on the third try unlocks.
#[test]
fn three_tries_at_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) for a pseudo-terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());
    let unlock_at_terminal = |lines: &str| {
        let cmd = format!(
            "{} --home {} unlock",
            attune_tests::bin("attune").display(),
            a.home.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("ATTUNE_PASSPHRASE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // One line per prompt, each after the previous try was checked.
        for line in lines.lines() {
            std::thread::sleep(Duration::from_millis(1500));
            use std::io::Write;
            let _ = stdin.write_all(format!("{line}\r").as_bytes());
            let _ = stdin.flush();
        }
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unlock at a terminal did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        (status.code().unwrap_or(-1), reader.join().unwrap())
    };

    let (code, out) = unlock_at_terminal("one\ntwo\nthree\n");
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        out.matches("wrong passphrase; try again").count(),
        2,
        "{out}"
    );
    assert!(out.contains("3 times: nothing was unlocked"), "{out}");
    assert!(agent_pids(&a.home).is_empty());

    let (code, out) = unlock_at_terminal(&format!("one\ntwo\n{PASS}\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unlocked for 8h"), "{out}");
    the_agent(&a.home);
    a.run(&["status"]).ok();
    a.run(&["lock"]).ok();
}

#[test]
fn a_keystore_sealed_under_another_passphrase_is_never_served_stale() {
    let dir = tempfile::tempdir().unwrap();
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());
    with_pass(&a, PASS).run(&["unlock"]).ok();
    a.run(&["status"]).ok();
    let pid = the_agent(&a.home);

    // The keystore is sealed again under a new passphrase behind the agent's back.
    let path = a.home.join("keystore.attune");
    let contents: KeystoreContents =
        open_keystore(&std::fs::read(&path).unwrap(), Some(PASS.as_bytes())).unwrap();
    let again = seal_keystore(
        &contents,
        Protection::Passphrase(b"a new passphrase", KdfParams::INSECURE_FOR_TESTS),
    )
    .unwrap();
    write_keystore_file(&path, &again).unwrap();

    // The old key opens nothing: the command asks, and the agent ends.
    assert_asks_for_passphrase(&a);
    wait_until(
        "the agent ends when its key is stale",
        Duration::from_secs(10),
        || agent_pids(&a.home).is_empty(),
    );
    assert!(!agent_pids(&a.home).contains(&pid));
    assert!(!socket(&a.home).exists());
    with_pass(&a, "a new passphrase").run(&["status"]).ok();
}

#[test]
fn a_stale_socket_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let a = locked_profile(dir.path(), "Alex");
    let _reaper = Reaper(a.home.clone());
    with_pass(&a, PASS).run(&["unlock"]).ok();
    let pid = the_agent(&a.home);
    // A crash: the socket stays behind.
    Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    wait_until("the agent is gone", Duration::from_secs(5), || {
        agent_pids(&a.home).is_empty()
    });
    assert!(socket(&a.home).exists());
    // A dead socket younger than two seconds might be an agent starting up: it
    // is left alone until it is older.
    std::thread::sleep(Duration::from_millis(2500));

    let started = Instant::now();
    assert_asks_for_passphrase(&a);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!socket(&a.home).exists(), "the stale socket is removed");
    with_pass(&a, PASS).run(&["status"]).ok();

    // And unlocking again works.
    with_pass(&a, PASS).run(&["unlock", "--for", "1m"]).ok();
    a.run(&["status"]).ok();
    // Unlocking once more replaces the agent instead of adding one.
    with_pass(&a, PASS).run(&["unlock", "--for", "1m"]).ok();
    let pid = the_agent(&a.home);
    a.run(&["status"]).ok();
    // Unlocking right after a crash (the dead socket is fresh) works too.
    Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    wait_until("the agent is gone", Duration::from_secs(5), || {
        agent_pids(&a.home).is_empty()
    });
    with_pass(&a, PASS).run(&["unlock", "--for", "1m"]).ok();
    the_agent(&a.home);
    a.run(&["status"]).ok();
    a.run(&["lock"]).ok();
    wait_until("the agent exits", Duration::from_secs(5), || {
        agent_pids(&a.home).is_empty()
    });
}

#[test]
fn unlocking_an_unprotected_profile_says_there_is_nothing_to_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let a = Attune::new(&dir.path().join("a"));
    a.init("Alex");
    let _reaper = Reaper(a.home.clone());
    let run = a.run(&["unlock"]).ok();
    assert!(run.stdout.contains("nothing to unlock"), "{}", run.stdout);
    assert!(!socket(&a.home).exists());
    assert!(agent_pids(&a.home).is_empty());
    let run = a.run(&["unlock", "--for", "0s"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--for"), "{}", run.stderr);
    let run = a.run(&["unlock", "--for", "soon"]);
    assert_eq!(run.code, 2, "clap refuses a duration it cannot read");
}
