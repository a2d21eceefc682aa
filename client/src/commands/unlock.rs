//! `attune unlock`, `attune lock` and the hidden `agent-serve`: the prompts and
//! messages around the engine's [`crate::agent`].

use std::path::Path;
use std::time::Duration;

use attune_core::agent::{self, AgentError};
use attune_core::profile::{io_err, ClientError, KEYSTORE_FILE};
use attune_core::ui::PassphraseSource;
use attune_crypto::{keystore_is_locked, KeystoreError, KeystoreKey};

use crate::prompts::Terminal;

fn agent_err(e: AgentError) -> ClientError {
    ClientError::Input(e.to_string())
}

fn read_keystore(home: &Path) -> Result<Vec<u8>, ClientError> {
    let path = home.join(KEYSTORE_FILE);
    match std::fs::read(&path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ClientError::NotInitialised(home.to_path_buf()))
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Runs Argon2id once on the passphrase: `ATTUNE_PASSPHRASE`, else asked at a
/// terminal, with three tries there.
fn stretch_key(bytes: &[u8]) -> Result<KeystoreKey, ClientError> {
    let mut source = Terminal;
    let tries = source.attempts();
    for attempt in 1..=tries {
        let p = source.passphrase(attempt)?;
        match KeystoreKey::derive(bytes, p.as_bytes()) {
            Ok((key, _)) => return Ok(key),
            Err(KeystoreError::WrongPassphrase) if attempt < tries => {}
            Err(KeystoreError::WrongPassphrase) if tries > 1 => {
                return Err(ClientError::Input(format!(
                    "wrong passphrase, {tries} times: nothing was unlocked"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ClientError::WrongPassphrase)
}

/// "8h", "1h 30m", "2days": how long, in the words humantime uses.
fn how_long(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

pub fn unlock(home: &Path, lifetime: Duration) -> Result<i32, ClientError> {
    if cfg!(not(unix)) {
        return Err(agent_err(AgentError::Unsupported));
    }
    if lifetime.is_zero() || lifetime > agent::MAX_LIFETIME {
        return Err(ClientError::Input(format!(
            "--for: choose between 1s and {}",
            how_long(agent::MAX_LIFETIME)
        )));
    }
    let bytes = read_keystore(home)?;
    if !keystore_is_locked(&bytes)? {
        outln!(
            "this profile's keys have no passphrase, so there is nothing to unlock: commands already run without asking"
        );
        return Ok(0);
    }
    let key = stretch_key(&bytes)?;
    let home = std::path::absolute(home).map_err(io_err(home))?;
    let exe = std::env::current_exe().map_err(|e| {
        ClientError::Input(format!(
            "cannot find the attune program to start the agent: {e}"
        ))
    })?;
    let args = vec![
        "--home".into(),
        home.clone().into_os_string(),
        "agent-serve".into(),
    ];
    let info = agent::start(&home, &exe, &args, &key, lifetime).map_err(agent_err)?;
    drop(key);
    let until = chrono::Local::now()
        + chrono::Duration::from_std(info.remaining).unwrap_or_else(|_| chrono::Duration::zero());
    outln!(
        "unlocked for {} (until {}): commands will not ask for the passphrase; `attune lock` locks again",
        how_long(info.remaining),
        until.format("%Y-%m-%d %H:%M")
    );
    Ok(0)
}

pub fn lock(home: &Path) -> Result<i32, ClientError> {
    if cfg!(not(unix)) {
        return Err(agent_err(AgentError::Unsupported));
    }
    if agent::lock(home).map_err(agent_err)? {
        outln!("locked: the agent forgot the keys; commands ask for the passphrase again");
    } else {
        outln!("nothing was unlocked");
    }
    Ok(0)
}

/// The agent process itself: serves until its time is up. Its standard streams
/// are /dev/null, so it says nothing; the exit status tells a debugger how it
/// ended (0: time, lock or a changed keystore; 1: it could not start).
pub async fn agent_serve(home: &Path) -> Result<i32, ClientError> {
    agent::serve(home, &home.join(KEYSTORE_FILE))
        .await
        .map_err(agent_err)?;
    Ok(0)
}
