//! The unlock agent: `attune unlock` runs Argon2id once and hands the stretched
//! keystore key ([`KeystoreKey`]) to a small background process that holds it in
//! memory and serves it on a Unix socket in the profile directory
//! (`agent.sock`, mode 0600, in the 0700 profile directory), so that later
//! commands open the keystore without Argon2 and without a prompt — until
//! `attune lock`, the time limit, or a reboot. Modelled on ssh-agent and
//! rbw-agent.
//!
//! - The agent is the same `attune` binary run with a hidden subcommand, which
//!   calls [`serve`]; [`start`] spawns it detached (its own process group, standard
//!   streams on /dev/null, no `ATTUNE_PASSPHRASE` in its environment) and gives
//!   it the key over the socket. On Linux it makes itself non-dumpable (no core
//!   file, no ptrace or /proc/PID/mem by other processes of the user) and accepts
//!   only peers of its own user id.
//! - Every key request re-reads the keystore file and checks that the key still
//!   opens it: when the keystore was sealed again under another passphrase or
//!   salt, or removed, the agent refuses and exits, so it never serves a stale
//!   key. Keys that change through the agent (pairing, a new epoch) are sealed
//!   with the same key (same salt, a fresh nonce), so the agent keeps working.
//! - Protocol: one request and one answer per connection; each frame is a
//!   big-endian u32 length, then one byte of protocol version, then the message
//!   in postcard (serde) encoding; at most [`MAX_FRAME`] bytes. Secret bytes
//!   travel only in buffers that are zeroized.
//! - A client that finds no live agent (no socket, a stale socket after a crash
//!   or reboot, another version, a timeout) falls back to the passphrase; a stale
//!   socket is removed.
//!
//! This module never prints, prompts or exits: the CLI does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use attune_crypto::{KeystoreContents, KeystoreKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// The socket's file name in the profile directory.
pub const SOCKET_FILE: &str = "agent.sock";
/// The version of the agent protocol (the byte after each frame's length).
pub const PROTOCOL_VERSION: u8 = 1;
/// The largest frame either side accepts (messages are tiny).
pub const MAX_FRAME: usize = 4096;
/// How long a client waits for the agent before going the passphrase way.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest an agent may hold the key.
pub const MAX_LIFETIME: Duration = Duration::from_secs(31 * 24 * 3600);
/// A socket nobody listens on is removed once it is older than this.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// How long a freshly started agent waits for its key before giving up.
const LOAD_WINDOW: Duration = Duration::from_secs(10);
/// How often the agent checks, between requests, that its socket and keystore
/// are still what they were.
const CHECK_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("unlock is not available on this platform: it needs Unix sockets; use ATTUNE_PASSPHRASE in scripts")]
    Unsupported,
    #[error("the profile directory {0} can be opened by other users: make it private (chmod 700) and unlock again")]
    HomeNotPrivate(PathBuf),
    #[error("the profile path {0} is too long for the agent's socket: use a shorter --home")]
    PathTooLong(PathBuf),
    #[error("another agent is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("the agent did not start: {0}")]
    DidNotStart(String),
    #[error("the agent refused: {0}")]
    Refused(Refusal),
    #[error("the agent at {0} speaks another protocol version ({1}, this attune speaks {PROTOCOL_VERSION}): stop it (`kill` it, or wait for its time limit) and unlock again")]
    OtherVersion(PathBuf, u8),
    #[error("the agent's answer was not understood: {0}")]
    Protocol(String),
    #[error("talking to the agent at {path} failed: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why the agent said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum Refusal {
    #[error("it has no key yet")]
    NotLoaded,
    #[error("it already holds a key")]
    AlreadyLoaded,
    #[error("the key does not open this profile's keystore")]
    KeyDoesNotOpen,
    #[error("the keystore changed under it (new passphrase, or removed); it has ended")]
    KeystoreChanged,
    #[error("it could not read the keystore")]
    Unavailable,
    #[error("the time asked for is out of range")]
    BadLifetime,
    #[error("it speaks another protocol version")]
    OtherVersion,
}

/// Bytes that are secret: zeroized when dropped, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("secret bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Secret, E> {
                Ok(Secret(Zeroizing::new(v.to_vec())))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Secret, E> {
                Ok(Secret(Zeroizing::new(v)))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Hold this keystore key for `lifetime_secs` (once, right after starting).
    Load { key: Secret, lifetime_secs: u64 },
    /// The keystore key, if it still opens the keystore.
    Key,
    /// Who is there, and for how long.
    Status,
    /// Forget the key and exit.
    Lock,
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Loaded {
        pid: u32,
        remaining_secs: u64,
    },
    Key {
        key: Secret,
    },
    Status {
        pid: u32,
        loaded: bool,
        remaining_secs: u64,
    },
    Locked,
    Refused(Refusal),
}

/// A running agent, as `attune unlock` started it or `status` found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentInfo {
    pub pid: u32,
    pub remaining: Duration,
}

/// Why an agent's [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Expired,
    Locked,
    KeystoreChanged,
    NeverLoaded,
    SocketTaken,
    Signal,
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join(SOCKET_FILE)
}

/// Encodes one frame into a zeroizing buffer.
fn encode_frame<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, AgentError> {
    let mut buf = Zeroizing::new(vec![0u8; 5 + MAX_FRAME]);
    let used = postcard::to_slice(msg, &mut buf[5..])
        .map_err(|e| AgentError::Protocol(e.to_string()))?
        .len();
    let len = u32::try_from(used + 1).map_err(|_| AgentError::Protocol("frame too long".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf[4] = PROTOCOL_VERSION;
    buf.truncate(5 + used);
    Ok(buf)
}

/// The body of one frame read from `r`: `Err(Some(v))` for another protocol
/// version `v`, `Err(None)` for anything malformed or an I/O failure.
fn read_frame<R: std::io::Read>(r: &mut R) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(FrameError::Io)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME + 1 {
        return Err(FrameError::Malformed(format!("a frame of {len} bytes")));
    }
    let mut buf = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut buf).map_err(FrameError::Io)?;
    if buf[0] != PROTOCOL_VERSION {
        return Err(FrameError::Version(buf[0]));
    }
    buf.remove(0);
    Ok(buf)
}

#[derive(Debug)]
enum FrameError {
    Io(std::io::Error),
    Version(u8),
    Malformed(String),
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(unix)]
pub use unix::{lock, open_with_agent, request, serve, start, status};

#[cfg(not(unix))]
mod elsewhere {
    use super::*;

    pub fn open_with_agent(
        _home: &Path,
        _keystore: &[u8],
    ) -> Option<(KeystoreKey, KeystoreContents)> {
        None
    }
    pub fn start(
        _home: &Path,
        _program: &Path,
        _args: &[std::ffi::OsString],
        _key: &KeystoreKey,
        _lifetime: Duration,
    ) -> Result<AgentInfo, AgentError> {
        Err(AgentError::Unsupported)
    }
    pub fn lock(_home: &Path) -> Result<bool, AgentError> {
        Err(AgentError::Unsupported)
    }
    pub fn status(_home: &Path) -> Result<Option<AgentInfo>, AgentError> {
        Err(AgentError::Unsupported)
    }
    pub async fn serve(_home: &Path, _keystore: &Path) -> Result<Ended, AgentError> {
        Err(AgentError::Unsupported)
    }
}

#[cfg(not(unix))]
pub use elsewhere::{lock, open_with_agent, serve, start, status};

#[cfg(unix)]
mod unix {
    use super::*;

    use std::io::{ErrorKind, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
        move |source| AgentError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The result of asking whoever listens on a profile's socket.
    enum Reach {
        /// Nothing there (no socket file, or a stale one, now removed).
        Nobody,
        Answer(Response),
    }

    /// Connects to the profile's agent: `Ok(None)` when none listens (a stale
    /// socket is removed; one younger than [`STALE_AFTER`] only when `any_age`).
    fn connect(home: &Path, any_age: bool) -> Result<Option<UnixStream>, AgentError> {
        let path = socket_path(home);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        // Only a socket of this user is an agent of ours.
        if !meta.file_type().is_socket() || meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(AgentError::Protocol(format!(
                "{} is not this user's agent socket: remove it",
                path.display()
            )));
        }
        match UnixStream::connect(&path) {
            Ok(s) => {
                s.set_read_timeout(Some(CLIENT_TIMEOUT))
                    .map_err(io(&path))?;
                s.set_write_timeout(Some(CLIENT_TIMEOUT))
                    .map_err(io(&path))?;
                Ok(Some(s))
            }
            // A socket left by an agent that died (crash, kill -9, reboot). One
            // bound in the last two seconds may be an agent between bind and
            // listen: leave it.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > STALE_AFTER);
                if old || any_age {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(None)
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn ask(home: &Path, req: &Request) -> Result<Reach, AgentError> {
        let path = socket_path(home);
        let Some(mut stream) = connect(home, false)? else {
            return Ok(Reach::Nobody);
        };
        stream.write_all(&encode_frame(req)?).map_err(io(&path))?;
        let body = read_frame(&mut stream).map_err(|e| match e {
            FrameError::Io(source) => AgentError::Io {
                path: path.clone(),
                source,
            },
            FrameError::Version(v) => AgentError::OtherVersion(path.clone(), v),
            FrameError::Malformed(m) => AgentError::Protocol(m),
        })?;
        let resp = decode(&body).map_err(|e| AgentError::Protocol(format!("{e:?}")))?;
        Ok(Reach::Answer(resp))
    }

    /// Sends one request to the profile's agent; `Ok(None)` when no agent runs.
    pub fn request(home: &Path, req: &Request) -> Result<Option<Response>, AgentError> {
        Ok(match ask(home, req)? {
            Reach::Nobody => None,
            Reach::Answer(r) => Some(r),
        })
    }

    /// The keystore key from a running agent, with the contents of `keystore`
    /// (the file's bytes) opened with it; `None` when no agent can serve it (the
    /// caller then asks for the passphrase). Never fails otherwise: every problem
    /// with the agent means "go the passphrase way".
    pub fn open_with_agent(
        home: &Path,
        keystore: &[u8],
    ) -> Option<(KeystoreKey, KeystoreContents)> {
        let Ok(Some(Response::Key { key })) = request(home, &Request::Key) else {
            return None;
        };
        let key = KeystoreKey::decode(&key.0).ok()?;
        let contents = key.open(keystore).ok()?;
        Some((key, contents))
    }

    /// What the profile's agent says about itself; `None` when none runs.
    pub fn status(home: &Path) -> Result<Option<AgentInfo>, AgentError> {
        match request(home, &Request::Status)? {
            None => Ok(None),
            Some(Response::Status {
                pid,
                loaded,
                remaining_secs,
            }) => Ok(loaded.then(|| AgentInfo {
                pid,
                remaining: Duration::from_secs(remaining_secs),
            })),
            Some(other) => Err(AgentError::Protocol(format!("{other:?}"))),
        }
    }

    /// Tells the profile's agent to forget the key and exit, and waits (at most
    /// five seconds) until its socket is gone. `Ok(false)` if none was running.
    pub fn lock(home: &Path) -> Result<bool, AgentError> {
        match request(home, &Request::Lock)? {
            None => Ok(false),
            Some(Response::Locked) => {
                let path = socket_path(home);
                let until = Instant::now() + Duration::from_secs(5);
                while path.exists() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(true)
            }
            Some(other) => Err(AgentError::Protocol(format!("{other:?}"))),
        }
    }

    /// Starts an agent for `home` that holds `key` for `lifetime`: runs `program
    /// args` (the `attune` binary's hidden agent command) detached, waits for its
    /// socket, and loads the key. An agent already running for this profile is
    /// told to lock first.
    #[allow(clippy::zombie_processes)] // the agent outlives this process by design
    pub fn start(
        home: &Path,
        program: &Path,
        args: &[std::ffi::OsString],
        key: &KeystoreKey,
        lifetime: Duration,
    ) -> Result<AgentInfo, AgentError> {
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(AgentError::Refused(Refusal::BadLifetime));
        }
        check_private(home)?;
        check_path_len(&socket_path(home))?;
        lock(home)?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("ATTUNE_PASSPHRASE")
            .current_dir("/")
            // Its own process group: Ctrl-C in the terminal and the terminal's
            // job control do not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| AgentError::DidNotStart(e.to_string()))?;
        let until = Instant::now() + LOAD_WINDOW;
        let req = Request::Load {
            key: Secret(key.encode()),
            lifetime_secs: lifetime.as_secs().max(1),
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(AgentError::DidNotStart(format!("it exited ({status})")));
            }
            if socket_path(home).exists() {
                match ask(home, &req) {
                    Ok(Reach::Answer(Response::Loaded {
                        pid,
                        remaining_secs,
                    })) => {
                        return Ok(AgentInfo {
                            pid,
                            remaining: Duration::from_secs(remaining_secs),
                        })
                    }
                    Ok(Reach::Answer(Response::Refused(r))) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(AgentError::Refused(r));
                    }
                    Ok(Reach::Answer(other)) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(AgentError::Protocol(format!("{other:?}")));
                    }
                    // Bound but not yet listening, or just removed: try again.
                    Ok(Reach::Nobody) | Err(_) => {}
                }
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AgentError::DidNotStart(
                    "its socket did not answer within 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn check_private(home: &Path) -> Result<(), AgentError> {
        let meta = std::fs::metadata(home).map_err(io(home))?;
        if meta.permissions().mode() & 0o077 != 0
            || meta.uid() != rustix::process::geteuid().as_raw()
        {
            return Err(AgentError::HomeNotPrivate(home.to_path_buf()));
        }
        Ok(())
    }

    fn check_path_len(path: &Path) -> Result<(), AgentError> {
        // sockaddr_un.sun_path is 108 bytes on Linux (104 on the BSDs), with a NUL.
        if path.as_os_str().len() >= 104 {
            return Err(AgentError::PathTooLong(path.to_path_buf()));
        }
        Ok(())
    }

    /// What the agent holds while it runs.
    struct State {
        keystore: PathBuf,
        key: Option<KeystoreKey>,
        deadline: tokio::time::Instant,
    }

    /// Does the key still open the keystore on disk? `Err` with the refusal to
    /// send when not.
    fn still_opens(keystore: &Path, key: &KeystoreKey) -> Result<(), Refusal> {
        match std::fs::read(keystore) {
            Ok(bytes) => match key.open(&bytes) {
                Ok(_) => Ok(()),
                Err(_) => Err(Refusal::KeystoreChanged),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Refusal::KeystoreChanged),
            Err(_) => Err(Refusal::Unavailable),
        }
    }

    /// Whole seconds left, rounded to the nearest.
    fn remaining(deadline: tokio::time::Instant) -> u64 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        u64::try_from(left.as_millis().saturating_add(500) / 1000).unwrap_or(u64::MAX)
    }

    /// Handles one request; `Some(reason)` when the agent must end after answering.
    fn handle(state: &mut State, req: Request) -> (Response, Option<Ended>) {
        let pid = std::process::id();
        match req {
            Request::Load { key, lifetime_secs } => {
                if state.key.is_some() {
                    return (Response::Refused(Refusal::AlreadyLoaded), None);
                }
                let lifetime = Duration::from_secs(lifetime_secs);
                if lifetime.is_zero() || lifetime > MAX_LIFETIME {
                    return (Response::Refused(Refusal::BadLifetime), None);
                }
                let Ok(key) = KeystoreKey::decode(&key.0) else {
                    return (Response::Refused(Refusal::KeyDoesNotOpen), None);
                };
                if still_opens(&state.keystore, &key).is_err() {
                    return (Response::Refused(Refusal::KeyDoesNotOpen), None);
                }
                state.key = Some(key);
                state.deadline = tokio::time::Instant::now() + lifetime;
                (
                    Response::Loaded {
                        pid,
                        remaining_secs: remaining(state.deadline),
                    },
                    None,
                )
            }
            Request::Key => {
                let Some(key) = &state.key else {
                    return (Response::Refused(Refusal::NotLoaded), None);
                };
                match still_opens(&state.keystore, key) {
                    Ok(()) => (
                        Response::Key {
                            key: Secret(key.encode()),
                        },
                        None,
                    ),
                    Err(Refusal::KeystoreChanged) => (
                        Response::Refused(Refusal::KeystoreChanged),
                        Some(Ended::KeystoreChanged),
                    ),
                    Err(r) => (Response::Refused(r), None),
                }
            }
            Request::Status => (
                Response::Status {
                    pid,
                    loaded: state.key.is_some(),
                    remaining_secs: remaining(state.deadline),
                },
                None,
            ),
            Request::Lock => (Response::Locked, Some(Ended::Locked)),
        }
    }

    /// One connection: one request, one answer, within the client time limit.
    async fn connection(state: &mut State, mut stream: tokio::net::UnixStream) -> Option<Ended> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Only this user's processes (the socket's mode says so too; this holds
        // even where a platform ignores a socket's mode).
        #[cfg(target_os = "linux")]
        {
            let me = rustix::process::geteuid();
            match rustix::net::sockopt::socket_peercred(&stream) {
                Ok(cred) if cred.uid == me => {}
                _ => return None,
            }
        }
        let read = async {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).await.ok()?;
            let n = u32::from_be_bytes(len) as usize;
            if n == 0 || n > MAX_FRAME + 1 {
                return None;
            }
            let mut buf = Zeroizing::new(vec![0u8; 4 + n]);
            buf[..4].copy_from_slice(&len);
            stream.read_exact(&mut buf[4..]).await.ok()?;
            Some(buf)
        };
        let frame = tokio::time::timeout(CLIENT_TIMEOUT, read).await.ok()??;
        let (resp, end) = match read_frame(&mut &frame[..]) {
            Ok(body) => match decode::<Request>(&body) {
                Ok(req) => handle(state, req),
                Err(_) => return None,
            },
            // Another version: answer in ours, so its client can say so.
            Err(FrameError::Version(_)) => (Response::Refused(Refusal::OtherVersion), None),
            Err(_) => return None,
        };
        if let Ok(out) = encode_frame(&resp) {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, stream.write_all(&out)).await;
        }
        end
    }

    /// Runs the agent for `home` (whose keystore file is `keystore`) until the
    /// time limit, `attune lock`, a change of the keystore's passphrase, SIGTERM
    /// or SIGINT. SIGHUP is ignored (closing
    /// the terminal does not end it). The socket is removed and the key zeroized
    /// on the way out. Meant to be the whole job of its process.
    pub async fn serve(home: &Path, keystore: &Path) -> Result<Ended, AgentError> {
        use tokio::signal::unix::{signal, SignalKind};

        #[cfg(target_os = "linux")]
        {
            // No core file and no ptrace or /proc/PID/mem by the user's other
            // processes (as ssh-agent does).
            let _ = rustix::process::set_dumpable_behavior(
                rustix::process::DumpableBehavior::NotDumpable,
            );
        }
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Core,
            rustix::process::Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        );
        // Whatever this process creates is its owner's alone (the socket first).
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));

        let home = std::path::absolute(home).map_err(io(home))?;
        let keystore = std::path::absolute(keystore).map_err(io(keystore))?;
        check_private(&home)?;
        let path = socket_path(&home);
        check_path_len(&path)?;
        // About to bind: whatever refuses connections there is dead. An agent
        // that still answers may be on its way out (`unlock` told it to lock):
        // give it a moment.
        let patience = std::time::Instant::now() + Duration::from_secs(3);
        while connect(&home, true)?.is_some() {
            if std::time::Instant::now() > patience {
                return Err(AgentError::AlreadyRunning(home));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let std_listener = std::os::unix::net::UnixListener::bind(&path).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&path))?;
        let ino = std::fs::symlink_metadata(&path).map_err(io(&path))?.ino();
        std_listener.set_nonblocking(true).map_err(io(&path))?;
        let listener = tokio::net::UnixListener::from_std(std_listener).map_err(io(&path))?;

        let mut term = signal(SignalKind::terminate()).map_err(io(&path))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io(&path))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io(&path))?;
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let mut state = State {
            keystore: keystore.clone(),
            key: None,
            deadline: tokio::time::Instant::now() + LOAD_WINDOW,
        };
        let ended = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(state.deadline) => {
                    break if state.key.is_some() { Ended::Expired } else { Ended::NeverLoaded };
                }
                _ = term.recv() => break Ended::Signal,
                _ = int.recv() => break Ended::Signal,
                _ = hup.recv() => {}
                _ = check.tick() => {
                    let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == ino);
                    if !ours {
                        break Ended::SocketTaken;
                    }
                    if let Some(key) = &state.key {
                        if still_opens(&keystore, key) == Err(Refusal::KeystoreChanged) {
                            break Ended::KeystoreChanged;
                        }
                    }
                }
                conn = listener.accept() => {
                    if let Ok((stream, _)) = conn {
                        if let Some(end) = connection(&mut state, stream).await {
                            break end;
                        }
                    }
                }
            }
        };
        // Forget the key first, then the socket (if it is still ours).
        state.key = None;
        drop(listener);
        if ended != Ended::SocketTaken
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == ino)
        {
            let _ = std::fs::remove_file(&path);
        }
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_and_are_versioned() {
        let req = Request::Load {
            key: Secret(Zeroizing::new(vec![7; 60])),
            lifetime_secs: 3600,
        };
        let frame = encode_frame(&req).unwrap();
        assert_eq!(frame[4], PROTOCOL_VERSION);
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        let body = read_frame(&mut &frame[..]).unwrap();
        assert_eq!(decode::<Request>(&body).unwrap(), req);

        let mut other = frame.clone();
        other[4] = PROTOCOL_VERSION + 1;
        assert!(matches!(
            read_frame(&mut &other[..]),
            Err(FrameError::Version(v)) if v == PROTOCOL_VERSION + 1
        ));
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(FrameError::Malformed(_))
        ));
        let short = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut &short[..]),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn secrets_are_not_shown() {
        let s = Secret(Zeroizing::new(vec![0xab; 32]));
        let shown = format!(
            "{:?}",
            Request::Load {
                key: s,
                lifetime_secs: 1
            }
        );
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
    }
}
