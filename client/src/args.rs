//! The command line's grammar: every command, argument and option, with its help.

use std::path::PathBuf;

use attune_core::item::{ExerciseKind, Need};
use clap::{Parser, Subcommand, ValueEnum};

/// attune: a private, end-to-end encrypted space for two partners to check in,
/// write to each other and practise understanding each other.
#[derive(Debug, Parser)]
#[command(name = "attune", version)]
pub struct Cli {
    /// Profile directory (keys and local data) [default: the platform data directory].
    #[arg(long, global = true, env = "ATTUNE_HOME")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// This device's settings.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The coach reads what you write before it is sent, on this device only, and
    /// suggests a pause when it sounds heated (on by default).
    Coach {
        /// `on` (the default) or `off`; leave out to see the setting.
        #[arg(value_enum, ignore_case = true)]
        state: Option<OnOff>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
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
    /// Add, list and revoke your devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// A recovery code that brings everything back if you lose every device.
    #[command(subcommand)]
    Recovery(RecoveryCommand),
    /// Show the safety number: compare it with your partner's, in person.
    Verify,
    /// Say how you are: mood, feelings, high, low, an appreciation, what you need.
    ///
    /// Sealed by default, with a guess of your partner first. It answers your
    /// partner's check-in if theirs is less than 20 hours old and still waits for
    /// yours (then both open at once); otherwise it waits for their next one. It
    /// syncs before and after, so there is nothing else to run. A check-in
    /// nobody answers within 20 hours stays sealed and shows as unanswered.
    Checkin(CheckinArgs),
    /// Write a journal entry (from -m, $EDITOR on a terminal, or standard input).
    Journal {
        /// The text (otherwise $VISUAL/$EDITOR opens on a terminal, or standard input is read).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
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
    Withdraw {
        /// The held entry's id, or its first 4 or more hex digits (`attune status` lists them).
        id: String,
    },
    /// Replace the text of one of your journal entries.
    Edit {
        /// The entry's id, or its first 4 or more hex digits (`attune feed` shows them).
        id: String,
        /// The new text (otherwise $VISUAL/$EDITOR opens on the current text, or standard input is read).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Delete one of your entries (on every device).
    Delete {
        /// The entry's id, or its first 4 or more hex digits (`attune feed` shows them).
        id: String,
    },
    /// Send what is waiting, receive what is new, verify everything.
    Sync,
    /// The timeline of both partners, oldest first.
    Feed(FeedArgs),
    /// One item in full.
    Show {
        /// The item's id, or its first 4 or more hex digits (`attune feed` shows them).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pairing, last sync, what is waiting, your partner's last check-in, problems.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stay connected and print your partner's new items as they arrive.
    ///
    /// After a dropped connection or a relay restart it reconnects and resumes
    /// where it was.
    Watch {
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
        /// Also raise a desktop notification for each new item of your
        /// partner's (it says what kind, never what it says).
        #[arg(long)]
        notify: bool,
    },
    /// Everything readable on this device, decrypted, for your own keeping.
    Export {
        /// What to write.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// The file to write (readable by you only; standard output if not given).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Bring in journal entries: attune's own JSON export, jrnl, or Day One.
    ///
    /// Each entry becomes one of your journal entries, dated when it was
    /// originally written. jrnl and Day One entries are private unless you give
    /// --shared; entries from an attune export stay private or shared as they
    /// were, and your partner's entries in it are skipped (only their author can
    /// bring them in). Importing the same file again adds nothing twice.
    /// Entries are written to this device first, like `attune journal`, and
    /// sent when the relay can be reached.
    Import(ImportArgs),
    /// Erase the space on the relay and this device's copy.
    Leave {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Start a blind exercise for both of you; answers open only when both answered.
    Ask {
        /// Which exercise.
        #[arg(value_enum)]
        kind: ExerciseArg,
        /// Your own prompt (a built-in one is used otherwise).
        prompt: Option<String>,
    },
    /// Seal your answer to an exercise (it cannot be changed afterwards). If your
    /// partner has answered, both open at once.
    Answer {
        /// The exercise's id, or its first 4 or more hex digits (`attune feed --kind exercise` lists them).
        id: String,
        /// Your answer (otherwise $VISUAL/$EDITOR opens with the question, or standard input is read).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Say whether your partner's revealed answer read you right (once per answer).
    Mark {
        /// Your partner's answer: its id, or its first 4 or more hex digits (`attune feed --kind answer`).
        id: String,
        /// Whether your partner's answer read you right.
        #[arg(value_enum)]
        verdict: Verdict,
        /// A note for your partner.
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Say back, in your own words, what you heard in your partner's item.
    Reflect {
        /// Your partner's item: its id, or its first 4 or more hex digits.
        id: String,
        /// What you heard (otherwise $VISUAL/$EDITOR opens with their words, or standard input is read).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
        /// Only print the coach's starting sentence, built from their words, to
        /// put in your own words; nothing is written.
        #[arg(long, conflicts_with = "message")]
        starter: bool,
    },
    /// Tell your partner their reflection got it right.
    Confirm {
        /// Your partner's reflection: its id, or its first 4 or more hex digits.
        id: String,
    },
    /// Tell your partner what their reflection missed.
    Correct {
        /// Your partner's reflection: its id, or its first 4 or more hex digits.
        id: String,
        /// What they missed (otherwise $VISUAL/$EDITOR opens with their reflection, or standard input is read).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Ask for a pause in a hard conversation, e.g. `attune timeout 20m`.
    Timeout {
        /// How long, from 5 to 120 minutes: 20m, 1h, 1h30m (a bare number is minutes).
        duration: String,
        /// A word for your partner, e.g. "I'm coming back".
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// End your pause early.
    Resume,
    /// Add something you appreciate about your partner to your shared list.
    Appreciate {
        /// What you appreciate (the words are joined with spaces).
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Both of your appreciations, newest last.
    Gratitude {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What is due today, your streaks, and one suggestion from recent patterns.
    Today {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Moods, guess accuracy, streaks and the balance of listening, in the terminal.
    Stats {
        /// How many days back.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the state-of-the-union report of a month, or the picture of a year:
    /// one HTML page with charts, readable offline, on a phone and on paper.
    Report {
        /// The month, YYYY-MM (default, and `--month` alone: this month).
        #[arg(long, value_name = "YYYY-MM", conflicts_with = "year",
              num_args = 0..=1, default_missing_value = "")]
        month: Option<String>,
        /// A whole year instead, YYYY.
        #[arg(long, value_name = "YYYY")]
        year: Option<String>,
        /// The HTML file to write (readable by you only).
        #[arg(long, value_name = "FILE", required_unless_present = "json")]
        out: Option<PathBuf>,
        /// Print the report's numbers as JSON instead (with --out, both).
        #[arg(long)]
        json: bool,
    },
    /// The 30-day empathy challenge: one small exercise a day.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// The emotion words check-ins use, grouped by pleasantness and energy.
    Feelings,
    /// Shell completions for bash, zsh, fish, elvish or PowerShell.
    ///
    /// For example: `attune completions bash > ~/.local/share/bash-completion/completions/attune`.
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
    },
    /// A one-command tour: a relay and two partners on this machine.
    Demo,
    /// Type the passphrase once: commands then use this device's keys without
    /// asking, until `attune lock`, the time limit or a restart (Unix only).
    Unlock {
        /// How long to stay unlocked, e.g. 30m, 8h, 2days.
        #[arg(long = "for", value_name = "DURATION", default_value = "8h")]
        for_: humantime::Duration,
    },
    /// Forget the unlocked keys at once: commands ask for the passphrase again.
    Lock,
    /// A daily reminder of what is due, at a time you choose.
    #[command(subcommand)]
    Remind(RemindCommand),
    /// What the last days show, and the practice to try next (worked out on
    /// this device).
    Coach {
        /// Days to look back over.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// This device's settings: `attune config coach off` turns the tone check off.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// (internal) The background agent `attune unlock` starts.
    #[command(name = "agent-serve", hide = true)]
    AgentServe,
}

#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// Create the shared space and print a code for your partner.
    Invite {
        /// The relay's address, e.g. https://relay.example:8733.
        #[arg(long, env = "ATTUNE_RELAY", value_name = "URL")]
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
        /// The code your partner's `attune pair invite` shows, e.g. 58301742-otter-maple.
        code: String,
        /// The relay's address, e.g. https://relay.example:8733.
        #[arg(long, env = "ATTUNE_RELAY", value_name = "URL")]
        relay: String,
        /// How long to wait for your partner's device, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// On a device you already use: print a code for your new device, and wait.
    Add {
        /// How long to wait for the new device, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// On the new device (after `attune init`): join with the code `device add` shows.
    ///
    /// The new device receives your keys and then the whole history, your
    /// private entries included. Your partner is told a device was added.
    Join {
        /// The code `attune device add` shows on your other device.
        code: String,
        /// The relay's address, e.g. https://relay.example:8733.
        #[arg(long, env = "ATTUNE_RELAY", value_name = "URL")]
        relay: String,
        /// What to call this device in lists, e.g. laptop [default: this computer's name].
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for your other device, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Every device of both of you, and which one this is.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cut off one of your other devices (lost, stolen, sold).
    ///
    /// It is refused by the relay from now on, and a new key is made for
    /// everything written afterwards, which it cannot read.
    Revoke {
        /// The device's id, or its first 4 or more hex digits (`attune device list` shows them).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCommand {
    /// Make a recovery code and show it once: write it down and keep it safe.
    Setup,
    /// Replace the recovery code: the old one stops working.
    Rotate,
    /// On a new device (after `attune init`), when every other device is lost:
    /// bring back your keys and history with the recovery code.
    ///
    /// The code is read from ATTUNE_RECOVERY_CODE, or asked for on the terminal.
    Restore {
        /// The relay's address, e.g. https://relay.example:8733.
        #[arg(long, env = "ATTUNE_RELAY", value_name = "URL")]
        relay: String,
        /// What to call this device in lists [default: this computer's name].
        #[arg(long)]
        name: Option<String>,
        /// Also revoke your other devices (the lost ones) without asking.
        #[arg(long)]
        revoke_others: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemindCommand {
    /// Remind me every day at this time (HH:MM, local): a desktop notification,
    /// or a line at your next `attune` command. Uses a systemd user timer, or
    /// your crontab where there is no systemd user session.
    At {
        /// The time of day, e.g. 21:00.
        time: String,
    },
    /// Remove the reminder.
    Off,
    /// (internal) What the scheduler runs at the reminder's time.
    #[command(hide = true)]
    Fire,
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
    pub need: Option<NeedArg>,
    /// Your guess of your partner's mood today (1-10), before seeing it.
    #[arg(long, allow_hyphen_values = true)]
    pub guess_mood: Option<String>,
    /// Your guess of your partner's feelings today, comma-separated.
    #[arg(long)]
    pub guess_feel: Option<String>,
    /// Share at once instead of sealing until your partner's check-in (no
    /// guessing on an open check-in). If your partner's sealed check-in waits for
    /// yours, this answers it and both open now.
    #[arg(long)]
    pub open: bool,
    /// Check in again although you already did today.
    #[arg(long)]
    pub again: bool,
}

#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// Only the newest N of the items that match.
    #[arg(short = 'n', long = "newest", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub newest: Option<u32>,
    /// Only items from then on: today, yesterday, a weekday (monday … sunday: the
    /// last one, today included), a span back from now (36h, 7d, 2w) or a date
    /// (2026-01-31). Days start at midnight, local time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only items by one of you: me, partner, or either name (any case).
    #[arg(long, value_name = "WHO")]
    pub from: Option<String>,
    /// Only items of these kinds (any case; comma-separated or repeated).
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = crate::filters::KindParser)]
    pub kind: Vec<attune_core::query::FeedKind>,
    /// Print the items as JSON (never paged, nothing cut).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The JSON file: from `attune export --format json`, `jrnl --export json`,
    /// or the .json in a Day One export's zip.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// What wrote the file [default: told from its contents].
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Make every entry private: only your own devices can read it (the
    /// default for jrnl and Day One).
    #[arg(long, conflicts_with = "shared")]
    pub private: bool,
    /// Share the entries with your partner (jrnl and Day One only: an attune
    /// export keeps each entry as it was).
    #[arg(long)]
    pub shared: bool,
    /// List what would be imported, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the counts (and each entry's fate) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What wrote the file `attune import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// attune's own `attune export --format json`.
    Attune,
    /// `jrnl --export json`: dates and times are read in your time zone.
    Jrnl,
    /// A Day One JSON export (Journal.json from its zip).
    Dayone,
}

impl From<ImportFormat> for attune_core::import::Format {
    fn from(f: ImportFormat) -> Self {
        match f {
            ImportFormat::Attune => Self::Attune,
            ImportFormat::Jrnl => Self::Jrnl,
            ImportFormat::Dayone => Self::DayOne,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Verdict {
    /// It read you right.
    Accurate,
    /// It missed something.
    Inaccurate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Every item as JSON.
    Json,
    /// A readable document.
    Markdown,
}

/// What one needs right now (`--need`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NeedArg {
    /// To be listened to, without advice.
    Listen,
    /// Support.
    Support,
    /// Suggestions.
    Suggestions,
    /// Some space.
    Space,
    /// A distraction.
    Distraction,
}

impl From<NeedArg> for Need {
    fn from(n: NeedArg) -> Self {
        match n {
            NeedArg::Listen => Need::Listen,
            NeedArg::Support => Need::Support,
            NeedArg::Suggestions => Need::Suggestions,
            NeedArg::Space => Need::Space,
            NeedArg::Distraction => Need::Distraction,
        }
    }
}

/// The blind exercises (`attune ask KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExerciseArg {
    /// What you believe your partner felt during a recent disagreement.
    PerspectiveSwap,
    /// What your partner thinks, feels, says and does about something.
    EmpathyMap,
    /// Three emotions you felt, after a conflict.
    EmotionNaming,
    /// The high and the low of your week.
    HighLow,
    /// An open question for both of you.
    Question,
    /// The monthly state of the union: what you appreciated, what weighed on you, one change.
    StateOfTheUnion,
}

impl From<ExerciseArg> for ExerciseKind {
    fn from(k: ExerciseArg) -> Self {
        match k {
            ExerciseArg::PerspectiveSwap => ExerciseKind::PerspectiveSwap,
            ExerciseArg::EmpathyMap => ExerciseKind::EmpathyMap,
            ExerciseArg::EmotionNaming => ExerciseKind::EmotionNaming,
            ExerciseArg::HighLow => ExerciseKind::HighLow,
            ExerciseArg::Question => ExerciseKind::Question,
            ExerciseArg::StateOfTheUnion => ExerciseKind::StateOfTheUnion,
        }
    }
}
