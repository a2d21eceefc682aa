//! The `attune` command line: argument parsing and the commands.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::inert;
use crate::item::{Body, CheckIn, Need};
use crate::pair;
use crate::profile::{now_ms, read_passphrase, resolve_home, ClientError, Entry, Profile, View};
use crate::relay::{EnvelopeStream, RelayClient};
use crate::render::{describe_entry, entry_json, markdown_body, visible, when};
use crate::style::Style;
use crate::sync;
use crate::vocab;
use attune_proto::SpaceId;

/// attune: a private, end-to-end encrypted space for two partners to check in,
/// write to each other and practise understanding each other.
#[derive(Debug, Parser)]
#[command(name = "attune", version, about, long_about = None)]
pub struct Cli {
    /// Profile directory (keys and local data) [default: the platform data directory].
    #[arg(long, global = true, env = "ATTUNE_HOME")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's identity.
    Init {
        /// What your partner will see you as.
        #[arg(long)]
        name: String,
        /// Store the keys without a passphrase (anyone who can read the file has them).
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Pair with your partner.
    #[command(subcommand)]
    Pair(PairCommand),
    /// Show the safety number: compare it with your partner's, in person.
    Verify,
    /// Say how you are: mood, feelings, high, low, an appreciation, what you need.
    Checkin(CheckinArgs),
    /// Write a journal entry (from -m, $EDITOR on a terminal, or standard input).
    Journal {
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
        /// Only your own devices can read it: your partner's device receives it
        /// encrypted under a key it does not have (it sees only that one exists).
        #[arg(long)]
        private: bool,
        /// Keep it on this device for a cool-off (e.g. 2h) before it is sent;
        /// `attune withdraw ID` cancels it until then.
        #[arg(long)]
        send_after: Option<String>,
    },
    /// Cancel an entry held with `journal --send-after` before it is sent.
    Withdraw { id: String },
    /// Replace the text of one of your journal entries.
    Edit {
        id: String,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// Delete one of your entries (on every device).
    Delete { id: String },
    /// Send what is waiting, receive what is new, verify everything.
    Sync,
    /// The timeline of both partners, oldest first.
    Feed(FeedArgs),
    /// One item in full.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Pairing, last sync, what is waiting, your partner's last check-in, problems.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stay connected and print your partner's new items as they arrive; after a
    /// dropped connection or a relay restart it reconnects and resumes where it was.
    Watch {
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Everything readable on this device, decrypted, for your own keeping.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase the space on the relay and this device's copy.
    Leave {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Start a blind exercise for both of you; answers open only when both answered.
    Ask {
        #[arg(value_enum)]
        kind: crate::item::ExerciseKind,
        /// Your own prompt (a built-in one is used otherwise).
        prompt: Option<String>,
    },
    /// Seal your answer to an exercise (it cannot be changed afterwards).
    Answer {
        id: String,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// Say whether your partner's revealed answer read you right.
    Mark {
        id: String,
        #[arg(value_enum)]
        verdict: Verdict,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// Say back, in your own words, what you heard in your partner's item.
    Reflect {
        id: String,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// Tell your partner their reflection got it right.
    Confirm { id: String },
    /// Tell your partner what their reflection missed.
    Correct {
        id: String,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// Ask for a pause in a hard conversation, e.g. `attune timeout 20m`.
    Timeout {
        duration: String,
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
    /// End your pause early.
    Resume,
    /// Add something you appreciate about your partner to your shared list.
    Appreciate { text: Vec<String> },
    /// Both of your appreciations, newest last.
    Gratitude {
        #[arg(long)]
        json: bool,
    },
    /// What is due today, your streaks, and one suggestion from recent patterns.
    Today {
        #[arg(long)]
        json: bool,
    },
    /// Moods, guess accuracy, streaks and the balance of listening, in the terminal.
    Stats {
        /// How many days back.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Write a month's state-of-the-union report: one HTML page with charts.
    Report {
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// The 30-day empathy challenge: one small exercise a day.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// The emotion words check-ins use, grouped by pleasantness and energy.
    Feelings,
    /// Shell completions, e.g. `attune completions bash > ~/.local/share/bash-completion/completions/attune`.
    Completions { shell: clap_complete::Shell },
    /// A one-command tour: a relay and two partners on this machine.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// Create the shared space and print a code for your partner.
    Invite {
        #[arg(long, env = "ATTUNE_RELAY")]
        relay: String,
        /// The relay's space-creation token, if its operator set one.
        #[arg(long, env = "ATTUNE_RELAY_TOKEN", hide_env_values = true)]
        relay_token: Option<String>,
        /// How long to wait for your partner, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Join your partner's space with the code they show you.
    Join {
        code: String,
        #[arg(long, env = "ATTUNE_RELAY")]
        relay: String,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChallengeCommand {
    /// Start today; `attune today` shows each day's exercise.
    Start,
    /// Stop the challenge.
    Stop,
}

#[derive(Debug, clap::Args)]
pub struct CheckinArgs {
    /// Mood from 1 (very low) to 10 (very good).
    #[arg(long, allow_hyphen_values = true)]
    pub mood: Option<String>,
    /// Two or three feelings, comma-separated (see `attune feelings`).
    #[arg(long)]
    pub feel: Option<String>,
    /// The best moment of the day.
    #[arg(long)]
    pub high: Option<String>,
    /// The hardest moment of the day.
    #[arg(long)]
    pub low: Option<String>,
    /// One thing you appreciate about your partner.
    #[arg(long)]
    pub appreciate: Option<String>,
    /// What you need right now.
    #[arg(long, value_enum)]
    pub need: Option<Need>,
    /// Your guess of your partner's mood today (1-10), before seeing it.
    #[arg(long, allow_hyphen_values = true)]
    pub guess_mood: Option<String>,
    /// Your guess of your partner's feelings today, comma-separated.
    #[arg(long)]
    pub guess_feel: Option<String>,
    /// Share at once instead of sealing until your partner has checked in today
    /// (no guessing on an open check-in).
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// Only items from this date on (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, value_enum)]
    pub from: Option<Who>,
    /// Only this kind: checkin or journal.
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Verdict {
    Accurate,
    Inaccurate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Who {
    Me,
    Partner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Json,
    Markdown,
}

/// Exit code when integrity problems were found (a script must notice).
pub const EXIT_INTEGRITY: i32 = 3;

pub async fn run(cli: Cli) -> Result<i32, ClientError> {
    let home = resolve_home(cli.home)?;
    match cli.command {
        Command::Init {
            name,
            no_passphrase,
        } => init(&home, &name, no_passphrase),
        Command::Pair(PairCommand::Invite {
            relay,
            relay_token,
            timeout,
        }) => {
            crate::relay::check_url(&relay)?;
            let mut p = Profile::open(&home)?;
            let wait = Duration::from_secs(timeout);
            let paired = pair::invite(&mut p, &relay, relay_token, wait, |code| {
                outln!("code: {code}");
                let _ = std::io::stdout().flush();
                eprintln!("Give your partner this code; they run: attune pair join {code} --relay {relay}");
            })
            .await?;
            outln!("paired with {}", inert::line(&paired.partner_name));
            outln!("Compare `attune verify` with your partner's, in person.");
            Ok(0)
        }
        Command::Pair(PairCommand::Join {
            code,
            relay,
            timeout,
        }) => {
            crate::relay::check_url(&relay)?;
            let mut p = Profile::open(&home)?;
            let paired = pair::join(&mut p, &code, &relay, Duration::from_secs(timeout)).await?;
            outln!("paired with {}", inert::line(&paired.partner_name));
            outln!("Compare `attune verify` with your partner's, in person.");
            Ok(0)
        }
        Command::Verify => {
            let p = Profile::open(&home)?;
            let roster = p.roster()?;
            let members = roster.members();
            if members.len() < 2 {
                return Err(ClientError::NotPaired);
            }
            let number =
                attune_crypto::safety_number(&members[0].identity_key, &members[1].identity_key);
            outln!("{number}");
            Ok(0)
        }
        Command::Checkin(args) => crate::practice_cmd::checkin(&home, args).await,
        Command::Journal {
            message,
            private,
            send_after,
        } => {
            let mut p = paired(&home)?;
            let delay = send_after
                .as_deref()
                .map(crate::practice_cmd::parse_duration_minutes)
                .transpose()?;
            let text = read_text(message, "journal")?;
            if let Some(minutes) = delay {
                let send_at = now_ms() + i64::from(minutes) * 60_000;
                let id = p.hold(Body::Journal { text }, private, send_at)?;
                outln!(
                    "held on this device until {} ({id}); `attune withdraw {}` cancels it",
                    when(send_at),
                    &id[..8]
                );
                return Ok(0);
            }
            let id = p.write(Body::Journal { text }, private)?;
            outln!(
                "{} ({})",
                if private { "kept privately" } else { "written" },
                id.to_hex()
            );
            try_push(&mut p).await;
            Ok(0)
        }
        Command::Withdraw { id } => {
            let p = paired(&home)?;
            let id = id.trim().to_lowercase();
            let held: Vec<String> =
                p.db.later()?
                    .into_iter()
                    .map(|h| h.0)
                    .filter(|h| id.len() >= 4 && h.starts_with(&id))
                    .collect();
            match held.as_slice() {
                [one] => {
                    p.db.remove_later(one)?;
                    outln!("withdrawn: it was never sent");
                    Ok(0)
                }
                [] => Err(ClientError::Input(format!(
                    "nothing held with id {id}: it may already have been sent (`attune status` lists what is held)"
                ))),
                _ => Err(ClientError::Input(format!("{id} matches several held entries; give more of the id"))),
            }
        }
        Command::Edit { id, message } => {
            let mut p = paired(&home)?;
            let target = own_entry(&p, &id)?;
            if !matches!(target.item.body, Body::Journal { .. }) {
                return Err(ClientError::Input(
                    "only journal entries can be edited".into(),
                ));
            }
            let text = read_text(message, "edit")?;
            p.write(
                Body::Edit {
                    target: target.id.to_hex(),
                    text,
                },
                target.private,
            )?;
            outln!("edited {}", target.id.to_hex());
            try_push(&mut p).await;
            Ok(0)
        }
        Command::Delete { id } => {
            let mut p = paired(&home)?;
            let target = own_entry(&p, &id)?;
            if !crate::profile::deletable(&target.item.body) {
                return Err(ClientError::Input(
                    "only open check-ins, journal entries and appreciations can be deleted; a sealed answer stays as it was sealed".into(),
                ));
            }
            p.write(
                Body::Delete {
                    target: target.id.to_hex(),
                },
                target.private,
            )?;
            outln!("deleted {}", target.id.to_hex());
            try_push(&mut p).await;
            Ok(0)
        }
        Command::Sync => {
            let mut p = paired(&home)?;
            let waiting = p.db.outbox_len()?;
            let report = match sync::sync(&mut p, std::io::stderr().is_terminal()).await {
                Ok(r) => r,
                Err(ClientError::Relay(e)) => {
                    eprintln!("could not sync: {}", inert::line(&e.to_string()));
                    eprintln!("{waiting} item(s) wait in the outbox; nothing is lost. Run `attune sync` again later.");
                    return Ok(1);
                }
                Err(e) => return Err(e),
            };
            outln!("sent {}, received {}", report.sent, report.received);
            Ok(report_problems(&report.view))
        }
        Command::Feed(args) => feed(&home, args),
        Command::Show { id, json } => show(&home, &id, json),
        Command::Status { json } => status(&home, json),
        Command::Watch { seconds } => watch(&home, seconds).await,
        Command::Export { format, out } => export(&home, format, out),
        Command::Leave { yes } => leave(&home, yes).await,
        Command::Ask { kind, prompt } => crate::practice_cmd::ask(&home, kind, prompt).await,
        Command::Answer { id, message } => crate::practice_cmd::answer(&home, &id, message).await,
        Command::Mark {
            id,
            verdict,
            message,
        } => crate::practice_cmd::mark(&home, &id, verdict == Verdict::Accurate, message).await,
        Command::Reflect { id, message } => crate::practice_cmd::reflect(&home, &id, message).await,
        Command::Confirm { id } => crate::practice_cmd::respond(&home, &id, None).await,
        Command::Correct { id, message } => {
            let text = read_text(message, "correction")?;
            crate::practice_cmd::respond(&home, &id, Some(text)).await
        }
        Command::Timeout { duration, message } => {
            crate::practice_cmd::timeout(&home, &duration, message).await
        }
        Command::Resume => crate::practice_cmd::resume(&home).await,
        Command::Appreciate { text } => {
            crate::practice_cmd::appreciate(&home, &text.join(" ")).await
        }
        Command::Gratitude { json } => crate::practice_cmd::gratitude(&home, json),
        Command::Today { json } => crate::insights_cmd::today(&home, json),
        Command::Stats { days, json } => crate::insights_cmd::stats(&home, days, json),
        Command::Report { month, out } => crate::insights_cmd::report(&home, month, &out),
        Command::Challenge(ChallengeCommand::Start) => crate::insights_cmd::challenge(&home, true),
        Command::Challenge(ChallengeCommand::Stop) => crate::insights_cmd::challenge(&home, false),
        Command::Feelings => {
            for (q, words) in vocab::EMOTIONS {
                outln!("{}: {}", q.label(), words.join(", "));
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "attune", &mut std::io::stdout());
            Ok(0)
        }
        Command::Demo => crate::demo::run().await,
    }
}

fn init(home: &std::path::Path, name: &str, no_passphrase: bool) -> Result<i32, ClientError> {
    let name = inert::valid_name(name).map_err(|e| {
        ClientError::Input(format!(
            "--name: {e}; choose a name of 1 to {} ordinary characters",
            inert::MAX_NAME_CHARS
        ))
    })?;
    let passphrase = if no_passphrase {
        None
    } else {
        let p = read_passphrase("choose a passphrase for this device's keys: ")?;
        if std::env::var_os("ATTUNE_PASSPHRASE").is_none() {
            let again = read_passphrase("type it again: ")?;
            if *again != *p {
                return Err(ClientError::Input("the two passphrases differ".into()));
            }
        }
        if p.is_empty() {
            return Err(ClientError::Input(
                "an empty passphrase protects nothing; use --no-passphrase if that is what you want".into(),
            ));
        }
        Some(p)
    };
    let p = Profile::init(home, name, passphrase)?;
    outln!(
        "created the identity of {} in {}",
        my_name(&p),
        home.display()
    );
    outln!("next: `attune pair invite --relay URL`, or `attune pair join CODE --relay URL`");
    Ok(0)
}

pub fn paired(home: &std::path::Path) -> Result<Profile, ClientError> {
    let p = Profile::open(home)?;
    if !p.is_paired() {
        return Err(ClientError::NotPaired);
    }
    Ok(p)
}

/// Sends the outbox if the relay is reachable; a relay that is down is a warning.
pub async fn try_push(p: &mut Profile) {
    match sync::push(p).await {
        Ok(_) => {}
        Err(ClientError::Relay(e)) => {
            eprintln!(
                "warning: not sent yet ({}); it waits in the outbox and goes with the next `attune sync`",
                inert::line(&e.to_string())
            );
        }
        Err(e) => eprintln!("warning: not sent yet: {}", inert::line(&e.to_string())),
    }
}

pub fn prompt(label: &str) -> Result<String, ClientError> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::Input(format!("could not read the answer: {e}")))?;
    Ok(line.trim().to_string())
}

pub fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

pub fn parse_mood(s: &str) -> Result<u8, ClientError> {
    match s.trim().parse::<u8>() {
        Ok(m) if (1..=10).contains(&m) => Ok(m),
        _ => Err(ClientError::Input(format!(
            "mood must be a whole number from 1 to 10, not '{}'",
            s.trim()
        ))),
    }
}

pub fn read_checkin(args: &CheckinArgs) -> Result<CheckIn, ClientError> {
    let interactive = args.mood.is_none() && std::io::stdin().is_terminal();
    if !interactive {
        let mood = args.mood.clone().ok_or_else(|| {
            ClientError::Input(
                "give --mood 1..10 (or run `attune checkin` in a terminal to be asked)".into(),
            )
        })?;
        let mood = parse_mood(&mood)?;
        let feelings = match &args.feel {
            Some(f) => vocab::parse_feelings(f).map_err(ClientError::Input)?,
            None => vec![],
        };
        return Ok(CheckIn {
            mood,
            feelings,
            high: nonempty(args.high.clone()),
            low: nonempty(args.low.clone()),
            appreciate: nonempty(args.appreciate.clone()),
            need: args.need,
        });
    }
    eprintln!("A short check-in. Press Enter to skip any question but the first.");
    let mood = loop {
        match parse_mood(&prompt(
            "How are you, from 1 (very low) to 10 (very good)? ",
        )?) {
            Ok(m) => break m,
            Err(e) => eprintln!("{e}"),
        }
    };
    let feelings = loop {
        let answer =
            prompt("Two or three words for what you feel (`attune feelings` lists them): ")?;
        match vocab::parse_feelings(&answer) {
            Ok(f) => break f,
            Err(e) => eprintln!("{e}"),
        }
    };
    let high = nonempty(Some(prompt("The best moment today: ")?));
    let low = nonempty(Some(prompt("The hardest moment today: ")?));
    let appreciate = nonempty(Some(prompt(
        "One thing you appreciate about your partner: ",
    )?));
    let need = loop {
        let answer =
            prompt("What do you need now? listen, support, suggestions, space, distraction: ")?;
        if answer.is_empty() {
            break None;
        }
        match Need::from_str(&answer, true) {
            Ok(n) => break Some(n),
            Err(_) => eprintln!("please answer with one of the five words, or press Enter"),
        }
    };
    Ok(CheckIn {
        mood,
        feelings,
        high,
        low,
        appreciate,
        need,
    })
}

/// Text from -m, else `$EDITOR` on a terminal, else standard input.
pub fn read_text(message: Option<String>, what: &str) -> Result<String, ClientError> {
    let text = if let Some(m) = message {
        m
    } else if std::io::stdin().is_terminal() {
        let editor = std::env::var("VISUAL")
            .or_else(|_| std::env::var("EDITOR"))
            .unwrap_or_else(|_| "vi".into());
        let file = tempfile::Builder::new()
            .prefix("attune-")
            .suffix(".md")
            .tempfile()
            .map_err(|e| {
                ClientError::Input(format!("could not create a file for the editor: {e}"))
            })?;
        let status = std::process::Command::new(&editor)
            .arg(file.path())
            .status()
            .map_err(|e| {
                ClientError::Input(format!("could not start the editor '{editor}': {e}"))
            })?;
        if !status.success() {
            return Err(ClientError::Input(format!(
                "the editor exited with {status}; nothing was saved"
            )));
        }
        std::fs::read_to_string(file.path())
            .map_err(|e| ClientError::Input(format!("could not read what you wrote: {e}")))?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| ClientError::Input(format!("could not read standard input: {e}")))?;
        s
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(ClientError::Input(format!(
            "the {what} is empty; nothing was saved"
        )));
    }
    Ok(text)
}

/// Finds one of this member's entries by id or unique id prefix.
fn own_entry(p: &Profile, id: &str) -> Result<Entry, ClientError> {
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    if !e.mine {
        return Err(ClientError::Input(
            "you can only change your own entries".into(),
        ));
    }
    if e.deleted {
        return Err(ClientError::Input("that entry is already deleted".into()));
    }
    Ok(e.clone())
}

pub fn find_entry<'a>(view: &'a View, id: &str) -> Result<&'a Entry, ClientError> {
    let id = id.trim().to_lowercase();
    if id.len() < 4 {
        return Err(ClientError::Input(
            "give at least 4 characters of the id".into(),
        ));
    }
    let matches: Vec<&Entry> = view
        .entries
        .iter()
        .filter(|e| e.id.to_hex().starts_with(&id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ClientError::Input(format!(
            "no item with id {id}; `attune feed` shows the ids"
        ))),
        _ => Err(ClientError::Input(format!(
            "{id} matches several items; give more of the id"
        ))),
    }
}

fn report_problems(view: &View) -> i32 {
    if view.problems.is_empty() {
        return 0;
    }
    let s = Style::stdout();
    eprintln!(
        "{}",
        s.bad(&format!(
            "{} integrity problem(s) in what the relay served:",
            view.problems.len()
        ))
    );
    for p in &view.problems {
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
    p.db.get("partner_name")
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
    let io = crate::profile::io_err;
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
        .map_err(crate::profile::io_err(path))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(crate::profile::io_err(path))?;
    file.persist(path)
        .map_err(|e| crate::profile::io_err(path)(e.error))?;
    Ok(())
}

fn feed(home: &std::path::Path, args: FeedArgs) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let since = match &args.since {
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| {
                    ClientError::Input(format!("--since takes a date like 2026-01-31, not '{d}'"))
                })?
                .and_hms_opt(0, 0, 0)
                .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                .map(|t| t.timestamp_millis())
                .unwrap_or(0),
        ),
        None => None,
    };
    const KINDS: &[&str] = &[
        "checkin",
        "journal",
        "answer",
        "exercise",
        "mark",
        "reflect",
        "confirm",
        "correct",
        "timeout",
        "resume",
        "appreciation",
    ];
    if let Some(k) = &args.kind {
        if !KINDS.contains(&k.as_str()) {
            return Err(ClientError::Input(format!(
                "--kind is one of {}, not '{k}'",
                KINDS.join(", ")
            )));
        }
    }
    let mut entries: Vec<&Entry> = view
        .entries
        .iter()
        .filter(|e| since.is_none_or(|s| e.item.at >= s))
        .filter(|e| match args.from {
            Some(Who::Me) => e.mine,
            Some(Who::Partner) => !e.mine,
            None => true,
        })
        .filter(|e| visible(e))
        .filter(|e| {
            args.kind
                .as_deref()
                .is_none_or(|k| entry_json(e, &view.practice)["kind"] == k)
        })
        .collect();
    entries.sort_by_key(|e| (e.item.at, e.cursor.unwrap_or(u64::MAX)));
    if args.json {
        let out = json!({
            "entries": entries.iter().map(|e| entry_json(e, &view.practice)).collect::<Vec<_>>(),
            "problems": view.problems,
        });
        outln!("{}", json_text(&out));
    } else {
        let s = Style::stdout();
        let partner = partner_name(&p);
        if entries.is_empty() {
            outln!(
                "{}",
                s.dim("nothing yet: `attune checkin` or `attune journal` to begin")
            );
        }
        // A reflect-back loop shows as one thread under the item it is about.
        let shown: std::collections::HashSet<String> =
            entries.iter().map(|e| e.id.to_hex()).collect();
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
            outln!("{}", describe_entry(e, &view.practice, &s, &partner));
            if let Some(t) = view
                .practice
                .threads
                .iter()
                .find(|t| t.root == e.id.to_hex())
            {
                for line in crate::render::thread_lines(t, &s, &partner) {
                    outln!("    {line}");
                }
            }
        }
    }
    Ok(report_problems(&view))
}

fn show(home: &std::path::Path, id: &str, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    if json_out {
        outln!("{}", json_text(&entry_json(e, &view.practice)));
    } else {
        let s = Style::stdout();
        outln!(
            "{}",
            describe_entry(e, &view.practice, &s, &partner_name(&p))
        );
        outln!(
            "{}",
            s.dim(&format!(
                "id {}  device {}",
                e.id.to_hex(),
                e.author.to_hex()
            ))
        );
    }
    Ok(0)
}

fn status(home: &std::path::Path, json_out: bool) -> Result<i32, ClientError> {
    let p = Profile::open(home)?;
    if !p.is_paired() {
        if json_out {
            outln!(
                "{}",
                json_text(&json!({ "paired": false, "name": p.name() }))
            );
        } else {
            outln!("{}: not paired yet", my_name(&p));
        }
        return Ok(0);
    }
    let view = p.view()?;
    let last_sync: Option<i64> = p.db.get("last_sync_ms")?.and_then(|v| v.parse().ok());
    let waiting = p.db.outbox_len()?;
    let partner = partner_name(&p);
    let last_checkin = view
        .entries
        .iter()
        .filter(|e| !e.mine && !e.deleted && entry_json(e, &view.practice)["kind"] == "checkin")
        .max_by_key(|e| e.item.at);
    let now = now_ms();
    let pause = view.practice.active_pause(now);
    let held = p.db.later()?;
    let held_json: Vec<_> = held
        .iter()
        .map(|(id, at, private, _)| json!({ "id": id, "send_at": at, "private": private }))
        .collect();
    let pause_json = pause.map(|x| {
        json!({ "by": if x.by_me { "me" } else { "partner" }, "since": x.at, "until": x.until, "text": x.text })
    });
    let last_heard = view
        .entries
        .iter()
        .filter(|e| !e.mine)
        .map(|e| e.item.at)
        .max();
    if json_out {
        let out = json!({
            "paired": true,
            "name": p.name(),
            "partner": partner,
            "relay": p.db.get("relay")?,
            "space": p.space()?.to_hex(),
            "last_sync": last_sync,
            "waiting": waiting,
            "pause": pause_json,
            "held": held_json,
            "partner_last_checkin": last_checkin.map(|e| entry_json(e, &view.practice)),
            "last_heard_from_partner": last_heard,
            "problems": view.problems,
        });
        outln!("{}", json_text(&out));
    } else {
        let s = Style::stdout();
        if let Some(x) = pause {
            let line = if x.by_me {
                format!("you asked for a pause until {}", when(x.until))
            } else {
                format!(
                    "{partner} asked for a pause until {}{} — give them that time; they will come back",
                    when(x.until),
                    x.text
                        .as_ref()
                        .map(|t| format!(": \"{}\"", s.text(t)))
                        .unwrap_or_default()
                )
            };
            outln!("{}", s.warn(&line));
        }
        outln!("{} and {}", s.me(&p.name()), s.partner(&partner));
        outln!(
            "relay: {}",
            inert::line(&p.db.get("relay")?.unwrap_or_default())
        );
        outln!(
            "last sync: {}",
            last_sync.map(when).unwrap_or_else(|| "never".into())
        );
        outln!("waiting to be sent: {waiting}");
        for (id, at, _, blob) in &held {
            let preview = match p.open_held(blob) {
                Ok(Body::Journal { text }) => {
                    inert::line(&text.chars().take(40).collect::<String>()).into_owned()
                }
                _ => String::new(),
            };
            outln!(
                "held until {}: {preview}… ({}; `attune withdraw {}`)",
                when(*at),
                &id[..8],
                &id[..8]
            );
        }
        match last_checkin {
            Some(e) => outln!(
                "{}'s last check-in: {}",
                partner,
                describe_entry(e, &view.practice, &s, &partner)
            ),
            None => outln!("{partner} has not checked in yet"),
        }
        if let Some(t) = last_heard {
            let days = (now_ms() - t) / 86_400_000;
            if days >= 2 {
                outln!(
                    "{}",
                    s.warn(&format!("nothing new from {partner} for {days} days"))
                );
            }
        }
        if view.problems.is_empty() {
            outln!("integrity: everything received verifies");
        }
    }
    Ok(report_problems(&view))
}

/// Reopens the stream after the last stored cursor, backing off from 0.5 s to
/// 15 s between tries; `None` if `deadline` passes first.
async fn reconnect(
    relay: &RelayClient,
    space: SpaceId,
    p: &Profile,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<EnvelopeStream>, ClientError> {
    let mut wait = Duration::from_millis(500);
    loop {
        let resume_at = tokio::time::Instant::now() + wait;
        if deadline.is_some_and(|d| d <= resume_at) {
            if let Some(d) = deadline {
                tokio::time::sleep_until(d).await;
            }
            return Ok(None);
        }
        tokio::time::sleep_until(resume_at).await;
        match relay.stream(space, p.db.last_cursor()?).await {
            Ok(s) => return Ok(Some(s)),
            Err(e) => {
                eprintln!(
                    "the relay is not reachable yet ({}); trying again",
                    inert::line(&e.to_string())
                );
                wait = (wait * 2).min(Duration::from_secs(15));
            }
        }
    }
}

async fn watch(home: &std::path::Path, seconds: Option<u64>) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let report = sync::sync(&mut p, false).await?;
    let mut shown: std::collections::HashSet<String> =
        report.view.entries.iter().map(|e| e.id.to_hex()).collect();
    let s = Style::stdout();
    let partner = partner_name(&p);
    eprintln!("watching for {partner}'s new items (ctrl-c to stop)");
    let deadline = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let relay = p.relay()?;
    let space = p.space()?;
    // Where the stream resumed: its cursors must grow from here. (Not the stored
    // resume point, which a `sync` in another terminal may have moved meanwhile.)
    let mut stream_last = p.db.last_cursor()?;
    let mut stream = relay.stream(space, stream_last).await?;
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            None => stream.next().await,
        };
        let item = match next {
            Some(Ok(item)) => item,
            lost => {
                // A relay restart or a network drop: resume after the last
                // envelope stored here, so nothing is missed or shown twice.
                let why = match lost {
                    Some(Err(e)) => e.to_string(),
                    _ => "the relay closed the stream".to_string(),
                };
                eprintln!(
                    "lost the connection to the relay ({}); reconnecting",
                    inert::line(&why)
                );
                match reconnect(&relay, space, &p, deadline).await? {
                    Some(s) => {
                        eprintln!("reconnected");
                        stream = s;
                        stream_last = p.db.last_cursor()?;
                        continue;
                    }
                    None => return Ok(0),
                }
            }
        };
        sync::check_cursors(stream_last, &[item.cursor], item.cursor)?;
        stream_last = item.cursor;
        p.db.store_received(&[(item.cursor, item.envelope.0)], now_ms())?;
        let mut view = p.view()?;
        // An item from a device added after this device last read the roster.
        if view.problems.iter().any(|x| x.kind == "roster_withheld") {
            sync::refresh_roster(&mut p).await?;
            view = p.view()?;
        }
        // Reveals happen here too, as soon as both have sealed.
        if !view.practice.reveals_due.is_empty() {
            for (exercise, key) in view.practice.reveals_due.clone() {
                p.write(Body::Reveal { exercise, key }, false)?;
            }
            try_push(&mut p).await;
            view = p.view()?;
        }
        for e in &view.entries {
            if shown.insert(e.id.to_hex()) && !e.mine {
                outln!("{}", describe_entry(e, &view.practice, &s, &partner));
                let _ = std::io::stdout().flush();
            }
        }
        if !view.problems.is_empty() {
            report_problems(&view);
        }
    }
    stream.close().await;
    Ok(0)
}

fn export(
    home: &std::path::Path,
    format: ExportFormat,
    out: Option<PathBuf>,
) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let partner = partner_name(&p);
    let text = match format {
        ExportFormat::Json => json_text(&json!({
            "exported_at": now_ms(),
            "me": p.name(),
            "partner": partner,
            "entries": view.entries.iter().filter(|e| visible(e)).map(|e| entry_json(e, &view.practice)).collect::<Vec<_>>(),
        })),
        ExportFormat::Markdown => {
            let (me, partner) = (
                inert::markdown_inline(&p.name()),
                inert::markdown_inline(&partner),
            );
            let mut md = format!("# attune: {me} and {partner}\n\n");
            for e in &view.entries {
                // Each body is quoted, so nothing in it can pass for a heading.
                let body = markdown_body(e, &view.practice)
                    .lines()
                    .map(|l| {
                        if l.is_empty() {
                            ">".into()
                        } else {
                            format!("> {l}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                md.push_str(&format!(
                    "## {} — {} ({})\n\n{body}\n\n",
                    when(e.item.at),
                    if e.mine { &me } else { &partner },
                    e.item.body.kind(),
                ));
            }
            md
        }
    };
    match out {
        Some(path) => {
            write_private(&path, text.as_bytes())?;
            eprintln!("wrote {} item(s) to {}", view.entries.len(), path.display());
        }
        None => outln!("{text}"),
    }
    Ok(0)
}

async fn leave(home: &std::path::Path, yes: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::Input(
                "leaving erases the space for both of you; pass --yes to confirm".into(),
            ));
        }
        eprintln!(
            "This erases your shared space on the relay, for both of you, and this device's copy."
        );
        eprintln!("Keep a copy first with: attune export --format markdown --out attune.md");
        if prompt("Type 'leave' to confirm: ")? != "leave" {
            eprintln!("nothing was erased");
            return Ok(1);
        }
    }
    let relay = p.relay()?;
    let space = p.space()?;
    match relay.delete_space(space).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(attune_proto::api::codes::NOT_FOUND) => {}
        Err(e) => return Err(e.into()),
    }
    p.reset_local()?;
    outln!("left: the space is erased on the relay and on this device");
    Ok(0)
}
