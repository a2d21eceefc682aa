//! `attune-bench history`: two paired profiles, `DIR/alex` and `DIR/sam` (no
//! passphrases), as they are after a full sync of a history of N items, and the
//! relay database `DIR/relay.sqlite3` that holds it.
//!
//! Everything goes through the client library, as the CLI would do it: the
//! relay runs in this process on a loopback port with `DIR/relay.sqlite3`, the
//! profiles are created and paired by the real pairing code, items are sealed by
//! `Profile::write` / `Profile::seal_answer`, sent and received by `sync::push` /
//! `sync::pull`, and every few simulated days both partners run the real
//! `sync::sync`, which verifies everything received (the relay releases the
//! held reveals of sealed answers). Item times come from the profile's [`Clock`], set to each
//! step's simulated time. The history ends yesterday. At the end both profiles
//! must sync with no integrity problem and hold exactly N envelopes; then their
//! stored relay URL is set to `--relay`.
//!
//! The shape (who writes what, when) is planned first by [`plan`], from a seed.

pub mod plan;
pub mod rng;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use attune_core::item::{Answer, Body};
use attune_core::practice::day_exercise;
use attune_core::profile::{Clock, Profile};
use attune_core::sync;
use attune_core::ui::Quiet;
use attune_proto::EntryId;
use chrono::{Local, NaiveDate, TimeZone};

use crate::target::Target;
use plan::{Exchange, Op, Plan, ALEX, SAM};

/// The relay URL the profiles point at unless `--relay` says otherwise.
pub const DEFAULT_RELAY: &str = "http://127.0.0.1:8787";

/// What was generated (counts, dates, some journal ids), as JSON, next to the profiles.
pub const MANIFEST: &str = "history.json";

/// The partners' names, as `attune init --name` would store them.
pub const NAMES: [&str; 2] = ["Alex", "Sam"];

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Envelopes in the shared space at the end, both partners together (every
    /// item is one envelope: check-ins, journals, keys, reveals, edits...).
    #[arg(long)]
    pub entries: usize,

    /// The directory to write (it must not exist, or be empty): DIR/alex,
    /// DIR/sam and DIR/relay.sqlite3.
    #[arg(long)]
    pub out: PathBuf,

    /// The relay URL stored in both profiles: start `attune-relay --db
    /// DIR/relay.sqlite3 --listen HOST:PORT` there to serve them.
    #[arg(long, default_value = DEFAULT_RELAY)]
    pub relay: String,

    /// Seed of the history's shape (who writes what, when).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Simulated days between the partners' full syncs, where sealed answers
    /// are revealed (devices also send and receive on contact days)
    /// [default: weekly, or about 64 full syncs over a longer history].
    #[arg(long)]
    pub sync_every: Option<u32>,

    /// Simulated days between contact days, when each device receives in the
    /// morning and sends in the evening [default: daily, or about 250 contact
    /// days over a longer history].
    #[arg(long)]
    pub contact_every: Option<u32>,

    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

impl HistoryArgs {
    pub fn new(entries: usize, out: PathBuf, relay: &str) -> Self {
        Self {
            entries,
            out,
            relay: relay.to_string(),
            seed: 1,
            sync_every: None,
            contact_every: None,
            quiet: true,
        }
    }

    /// Roughly how many days the history spans.
    fn days(&self) -> usize {
        self.entries / plan::TYPICAL_PER_DAY + 1
    }

    /// The contact interval: given, or daily up to 250 days, else about 250
    /// contact days in all (each costs a push and a pull per device).
    pub fn contact_every(&self) -> u32 {
        self.contact_every
            .unwrap_or_else(|| self.days().div_ceil(250) as u32)
            .max(1)
    }

    /// The sync interval: given, or weekly, or about 64 full syncs over a longer
    /// history (a sync's cost follows what it receives, so their number matters
    /// little; each also has a fixed cost).
    pub fn sync_every(&self) -> u32 {
        self.sync_every
            .unwrap_or_else(|| ((self.days() / 64) as u32).max(7))
            .max(1)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExtendArgs {
    /// The profile that writes, e.g. DIR/alex (a copy: it is written without
    /// waiting for the disk).
    #[arg(long)]
    pub home: PathBuf,
    /// How many items (envelopes) to write.
    #[arg(long)]
    pub entries: usize,
    /// Seed of the items' shape.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// What was generated, and where the time went.
#[derive(Debug, Default)]
pub struct Summary {
    pub envelopes: usize,
    pub days: u32,
    pub first_day: String,
    pub last_day: String,
    pub sync_every: u32,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Per step kind: (count, time spent).
    pub time: BTreeMap<&'static str, (usize, Duration)>,
    pub total: Duration,
    /// Ids of each partner's last journal entries that are not deleted (not
    /// private): `[alex, sam]`.
    pub journals: [Vec<String>; 2],
}

impl Summary {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} envelopes over {} simulated days ({} to {}), full syncs every {} days, in {:.1} s\n\n",
            self.envelopes,
            self.days,
            self.first_day,
            self.last_day,
            self.sync_every,
            self.total.as_secs_f64()
        );
        out.push_str("| items | count |\n|---|---:|\n");
        for (k, n) in &self.by_kind {
            out.push_str(&format!("| {k} | {n} |\n"));
        }
        out.push_str("\n| step | count | seconds | ms each |\n|---|---:|---:|---:|\n");
        for (k, (n, d)) in &self.time {
            out.push_str(&format!(
                "| {k} | {n} | {:.1} | {:.2} |\n",
                d.as_secs_f64(),
                d.as_secs_f64() * 1000.0 / (*n).max(1) as f64
            ));
        }
        out
    }
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    let summary = generate(&args).await?;
    if !args.quiet {
        println!("\n{}", summary.markdown());
        println!(
            "serve it: attune-relay --db {} --listen {}",
            args.out.join("relay.sqlite3").display(),
            args.relay
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
        );
        println!(
            "then e.g.: attune --home {} status",
            args.out.join("sam").display()
        );
    }
    Ok(())
}

/// The simulated calendar: day 0 is `first`, and the last day is yesterday.
#[derive(Debug, Clone, Copy)]
struct Calendar {
    first: NaiveDate,
}

impl Calendar {
    fn ending_yesterday(days: u32) -> anyhow::Result<Self> {
        let today = Local::now().date_naive();
        let first = today
            .checked_sub_days(chrono::Days::new(u64::from(days)))
            .context("the history reaches before the calendar starts: ask for fewer entries")?;
        Ok(Self { first })
    }

    fn date(&self, day: u32) -> NaiveDate {
        self.first
            .checked_add_days(chrono::Days::new(u64::from(day)))
            .unwrap_or(self.first)
    }

    /// The local calendar day, as `attune checkin` names it.
    fn day(&self, day: u32) -> String {
        self.date(day).format("%Y-%m-%d").to_string()
    }

    /// Unix milliseconds of `second` into local day `day`.
    fn ms(&self, day: u32, second: u32) -> i64 {
        let naive = self.date(day).and_time(chrono::NaiveTime::MIN)
            + chrono::Duration::seconds(i64::from(second));
        match Local.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.timestamp_millis()
            }
            // In a daylight-saving gap: the same wall time read as UTC is close enough.
            chrono::LocalResult::None => naive.and_utc().timestamp_millis(),
        }
    }
}

fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: give a new directory (the history is written from scratch)",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// Generates the history described by `args` (see the module documentation).
pub async fn generate(args: &HistoryArgs) -> anyhow::Result<Summary> {
    ensure!(args.entries >= 1, "--entries must be at least 1");
    attune_core::relay::check_url(&args.relay)
        .map_err(|e| anyhow::anyhow!("--relay {}: {e}", args.relay))?;
    let started = Instant::now();
    let sync_every = args.sync_every();
    let plan = plan::plan(args.entries, args.seed, sync_every, args.contact_every());
    let cal = Calendar::ending_yesterday(plan.days)?;
    prepare_out(&args.out)?;
    let relay = Target::in_process(&args.out).await?;
    let result = run_plan(args, &plan, cal, relay.url(), started).await;
    relay.stop().await?;
    let mut summary = result?;
    // What is on disk now, with the relay stopped and the profiles closed.
    let stored = count(
        &args.out.join("relay.sqlite3"),
        "SELECT COUNT(*) FROM envelopes",
    )?;
    ensure!(
        stored == args.entries,
        "the relay holds {stored} envelopes, not {}",
        args.entries
    );
    for name in ["alex", "sam"] {
        let db = args.out.join(name).join(attune_core::profile::DB_FILE);
        let received = count(&db, "SELECT COUNT(*) FROM received")?;
        ensure!(
            received == args.entries,
            "{name}'s profile holds {received} envelopes, not {}",
            args.entries
        );
    }
    summary.envelopes = stored;
    summary.days = plan.days;
    summary.first_day = cal.day(0);
    summary.last_day = cal.day(plan.days.saturating_sub(1));
    summary.sync_every = sync_every;
    summary.by_kind = plan.by_kind.clone();
    summary.total = started.elapsed();
    let manifest = serde_json::json!({
        "entries": summary.envelopes,
        "seed": args.seed,
        "sync_every": sync_every,
        "days": summary.days,
        "first_day": summary.first_day,
        "last_day": summary.last_day,
        "relay": args.relay.trim_end_matches('/'),
        "journals": { "alex": summary.journals[ALEX], "sam": summary.journals[SAM] },
        "by_kind": summary.by_kind,
        "by_partner": { "alex": plan.by_who[ALEX], "sam": plan.by_who[SAM] },
        "seconds": summary.total.as_secs_f64(),
    });
    let path = args.out.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(summary)
}

fn count(db: &Path, sql: &str) -> anyhow::Result<usize> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    let n: i64 = conn
        .query_row(sql, [], |r| r.get(0))
        .with_context(|| format!("counting in {}", db.display()))?;
    Ok(n as usize)
}

/// Creates and pairs the two profiles, runs every step, and checks the end state.
async fn run_plan(
    args: &HistoryArgs,
    plan: &Plan,
    cal: Calendar,
    url: &str,
    started: Instant,
) -> anyhow::Result<Summary> {
    let paired_at = Clock::At(cal.ms(0, 6 * 3600));
    let mut people = pair(&args.out, url, paired_at).await?;
    let mut summary = Summary::default();
    let mut ids: Vec<Option<EntryId>> = vec![None; plan.handles];
    let id = |ids: &[Option<EntryId>], h: plan::Handle| -> anyhow::Result<String> {
        ids.get(h)
            .copied()
            .flatten()
            .map(|e| e.to_hex())
            .with_context(|| format!("step refers to item {h}, which was not written"))
    };
    let mut last_problems: [Option<usize>; 2] = [None, None];
    let mut journals: [Vec<plan::Handle>; 2] = [Vec::new(), Vec::new()];
    let mut written = 0usize;
    let mut next_report = 0.0;
    for step in &plan.steps {
        let p = &mut people[step.who];
        p.clock = Clock::At(cal.ms(step.day, step.second));
        let t = Instant::now();
        let new = match &step.op {
            Op::Journal { text, private } => {
                Some(p.write(Body::Journal { text: text.clone() }, *private)?)
            }
            Op::Edit {
                target,
                text,
                private,
            } => Some(p.write(
                Body::Edit {
                    target: id(&ids, *target)?,
                    text: text.clone(),
                },
                *private,
            )?),
            Op::Delete { target, private } => Some(p.write(
                Body::Delete {
                    target: id(&ids, *target)?,
                },
                *private,
            )?),
            Op::Appreciation { text } => {
                Some(p.write(Body::Appreciation { text: text.clone() }, false)?)
            }
            Op::OpenCheckIn(c) => Some(p.write(Body::CheckIn(c.clone()), false)?),
            Op::SealCheckIn { checkin, guess } => {
                let day = cal.day(step.day);
                let answer = plan::checkin_answer(&day, checkin, guess);
                Some(p.seal_answer(&day_exercise(&day), &answer)?)
            }
            Op::Ask { kind, prompt } => Some(p.write(
                Body::Exercise {
                    exercise_kind: *kind,
                    prompt: prompt.clone(),
                },
                false,
            )?),
            Op::Answer { exercise, text } => Some(p.seal_answer(
                &id(&ids, *exercise)?,
                &Answer::Exercise { text: text.clone() },
            )?),
            Op::Mark {
                exchange,
                accurate,
                note,
            } => {
                let exercise = match exchange {
                    Exchange::Day(d) => day_exercise(&cal.day(*d)),
                    Exchange::Exercise(h) => id(&ids, *h)?,
                };
                Some(p.write(
                    Body::Mark {
                        exercise,
                        accurate: *accurate,
                        note: note.clone(),
                    },
                    false,
                )?)
            }
            Op::Reflect { root, text } => Some(p.write(
                Body::Reflect {
                    target: id(&ids, *root)?,
                    text: text.clone(),
                },
                false,
            )?),
            Op::Confirm { reflection } => Some(p.write(
                Body::Confirm {
                    target: id(&ids, *reflection)?,
                },
                false,
            )?),
            Op::Correct { reflection, text } => Some(p.write(
                Body::Correct {
                    target: id(&ids, *reflection)?,
                    text: text.clone(),
                },
                false,
            )?),
            Op::Timeout { minutes, text } => Some(p.write(
                Body::Timeout {
                    minutes: *minutes,
                    text: text.clone(),
                },
                false,
            )?),
            Op::Resume => Some(p.write(Body::Resume, false)?),
            Op::Push => {
                sync::push(p).await?;
                None
            }
            Op::Pull => {
                sync::pull(p, &mut Quiet).await?;
                None
            }
            Op::Sync => {
                let report = sync::sync(p, &mut Quiet).await?;
                if !report.problems.is_empty() {
                    let list: Vec<String> = report
                        .problems
                        .iter()
                        .map(|x| format!("[{}] {}", x.kind, x.detail))
                        .collect();
                    bail!(
                        "{}'s sync on day {} found integrity problems (a bug in the generator or the client):\n{}",
                        NAMES[step.who],
                        step.day,
                        list.join("\n")
                    );
                }
                last_problems[step.who] = Some(report.problems.len());
                None
            }
        };
        let e = summary.time.entry(step.op.kind()).or_default();
        e.0 += 1;
        e.1 += t.elapsed();
        if let (Some(h), Some(new)) = (step.item, new) {
            if let Some(slot) = ids.get_mut(h) {
                *slot = Some(new);
            }
            if matches!(step.op, Op::Journal { private: false, .. }) {
                journals[step.who].push(h);
            }
        }
        written += step.op.envelopes();
        let done = written as f64 / args.entries as f64;
        if !args.quiet && done >= next_report {
            eprintln!(
                "{:>5.1} s  {:>3.0} %  day {} of {}, {written} envelopes written",
                started.elapsed().as_secs_f64(),
                done * 100.0,
                step.day + 1,
                plan.days
            );
            next_report += 0.1;
        }
    }
    ensure!(
        last_problems.iter().all(|p| *p == Some(0)),
        "both partners must have synced at the end"
    );
    for (who, p) in people.iter().enumerate() {
        ensure!(
            p.db.outbox_len()? == 0,
            "{}'s outbox is not empty at the end",
            NAMES[who]
        );
        p.set_relay_url(args.relay.trim_end_matches('/'))?;
    }
    let deleted: std::collections::HashSet<plan::Handle> = plan
        .steps
        .iter()
        .filter_map(|s| match s.op {
            Op::Delete { target, .. } => Some(target),
            _ => None,
        })
        .collect();
    for who in [ALEX, SAM] {
        let live: Vec<String> = journals[who]
            .iter()
            .filter(|h| !deleted.contains(h))
            .rev()
            .take(10)
            .filter_map(|h| id(&ids, *h).ok())
            .collect();
        summary.journals[who] = live;
    }
    Ok(summary)
}

/// Creates both profiles (no passphrase) and pairs them through the relay at
/// `url`, the way `attune pair invite` and `attune pair join` do.
async fn pair(out: &Path, url: &str, clock: Clock) -> anyhow::Result<[Profile; 2]> {
    let mut alex = Profile::init(&out.join("alex"), NAMES[ALEX], None)?;
    let mut sam = Profile::init(&out.join("sam"), NAMES[SAM], None)?;
    for p in [&mut alex, &mut sam] {
        p.clock = clock;
        // A generated profile is thrown away if the generator stops half-way:
        // its commits need not wait for the disk (the same data, written faster).
        p.db.without_durability()?;
    }
    let (code_tx, code_rx) = tokio::sync::oneshot::channel::<String>();
    let url2 = url.to_string();
    let inviter = tokio::spawn(async move {
        let r =
            attune_core::pair::invite(&mut alex, &url2, None, Duration::from_secs(60), |code| {
                let _ = code_tx.send(code.to_string());
            })
            .await;
        r.map(|_| alex)
    });
    let code = code_rx
        .await
        .context("the inviter stopped before showing a code")?;
    attune_core::pair::join(&mut sam, &code, url, Duration::from_secs(60))
        .await
        .context("pairing: join")?;
    let alex = inviter
        .await
        .context("the inviter panicked")?
        .context("pairing: invite")?;
    Ok([alex, sam])
}

/// Writes `items` more envelopes as one partner (`home`, a profile from
/// [`generate`]) through the client library and pushes them to the relay the
/// profile points at, which must be running: what that partner writes while the
/// other is away (see [`plan::solo`]). The items are dated over today, up to now.
/// The other profile is untouched, so its next `attune sync` receives them all.
pub async fn extend(home: &Path, items: usize, seed: u64) -> anyhow::Result<()> {
    let mut p = Profile::open(home)?;
    ensure!(p.is_paired(), "{} is not a paired profile", home.display());
    // Only ever run on a copy (the client bench's): no need to wait for the disk.
    p.db.without_durability()?;
    let now = Local::now();
    let midnight = now
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_local_timezone(Local)
        .earliest()
        .map_or(now.timestamp_millis() - 3_600_000, |t| t.timestamp_millis());
    let end = now.timestamp_millis() - 60_000;
    let start = midnight.min(end - 60_000);
    let step = (end - start) / items.max(1) as i64;
    let ops = plan::solo(items, seed);
    let mut ids: Vec<Option<EntryId>> = vec![None; ops.len()];
    for (i, (op, h)) in ops.iter().enumerate() {
        p.clock = Clock::At(start + i as i64 * step);
        let target = |t: &plan::Handle| -> anyhow::Result<String> {
            ids.get(*t)
                .copied()
                .flatten()
                .map(|e| e.to_hex())
                .context("an edit before its journal")
        };
        let (body, private) = match op {
            Op::Journal { text, private } => (Body::Journal { text: text.clone() }, *private),
            Op::Edit {
                target: t,
                text,
                private,
            } => (
                Body::Edit {
                    target: target(t)?,
                    text: text.clone(),
                },
                *private,
            ),
            Op::Delete { target: t, private } => (Body::Delete { target: target(t)? }, *private),
            Op::Appreciation { text } => (Body::Appreciation { text: text.clone() }, false),
            Op::OpenCheckIn(c) => (Body::CheckIn(c.clone()), false),
            Op::Ask { kind, prompt } => (
                Body::Exercise {
                    exercise_kind: *kind,
                    prompt: prompt.clone(),
                },
                false,
            ),
            Op::Timeout { minutes, text } => (
                Body::Timeout {
                    minutes: *minutes,
                    text: text.clone(),
                },
                false,
            ),
            Op::Resume => (Body::Resume, false),
            other => bail!("a solo history has no {} step", other.kind()),
        };
        let id = p.write(body, private)?;
        if let Some(slot) = h.and_then(|h| ids.get_mut(h)) {
            *slot = Some(id);
        }
    }
    p.clock = Clock::At(end);
    sync::push(&mut p).await?;
    ensure!(p.db.outbox_len()? == 0, "not everything was sent");
    Ok(())
}
