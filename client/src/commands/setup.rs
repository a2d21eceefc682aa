//! Setting up and keeping in touch: `init`, `status`, `watch`, `leave`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::json;

use attune_core::db::Incoming;
use attune_core::inert;
use attune_core::item::Body;
use attune_core::profile::{now_ms, ClientError, Profile};
use attune_core::query::{Author, FeedKind, FeedQuery};
use attune_core::relay::{EnvelopeStream, RelayClient};
use attune_core::sync;

use attune_proto::SpaceId;

use crate::common::{json_text, my_name, paired, partner_name, report_problems, try_push, DAY_MS};
use crate::prompts::{prompt, Terminal};
use crate::render::{describe_entry, entry_json, when};
use crate::style::Style;

pub fn init(home: &std::path::Path, name: &str, no_passphrase: bool) -> Result<i32, ClientError> {
    let name = inert::valid_name(name).map_err(|e| {
        ClientError::Input(format!(
            "--name: {e}; choose a name of 1 to {} ordinary characters",
            inert::MAX_NAME_CHARS
        ))
    })?;
    let passphrase = if no_passphrase {
        None
    } else {
        let p = crate::prompts::read_passphrase("choose a passphrase for this device's keys: ")?;
        // Said at once, not after typing nothing a second time.
        if p.is_empty() {
            return Err(ClientError::Input(
                "an empty passphrase protects nothing; use --no-passphrase if that is what you want".into(),
            ));
        }
        if std::env::var_os("ATTUNE_PASSPHRASE").is_none() {
            let again = crate::prompts::read_passphrase("type it again: ")?;
            if *again != *p {
                return Err(ClientError::Input("the two passphrases differ".into()));
            }
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
    outln!("(already using attune on another device? `attune device join CODE --relay URL`; lost them all? `attune recovery restore --relay URL`)");
    Ok(0)
}

pub fn status(home: &std::path::Path, json_out: bool) -> Result<i32, ClientError> {
    let p = Profile::open_with(home, &mut Terminal)?;
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
    let now = now_ms();
    // A pause lasts hours at most: two days of items show any in force.
    let view = p.view_recent(now - 2 * DAY_MS)?;
    let last_sync = p.last_sync_ms()?;
    let waiting = p.db.outbox_len()?;
    let partner = partner_name(&p);
    let latest = p.feed(&FeedQuery {
        from: Some(Author::Partner),
        kinds: vec![FeedKind::CheckIn],
        newest: Some(1),
        ..FeedQuery::default()
    })?;
    let last_checkin = latest.items.iter().rfind(|e| !e.deleted);
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
            "relay": p.relay_url()?,
            "space": p.space()?.to_hex(),
            "last_sync": last_sync,
            "waiting": waiting,
            "pause": pause_json,
            "held": held_json,
            "partner_last_checkin": last_checkin.map(|e| entry_json(e, &latest.view.practice)),
            "last_heard_from_partner": last_heard,
            "device_changes": crate::common::device_json(&p, now - 14 * DAY_MS),
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
            inert::line(&p.relay_url()?.unwrap_or_default())
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
                describe_entry(e, &latest.view.practice, &s, &partner)
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
        for line in crate::common::device_lines(&p, now - 14 * DAY_MS) {
            outln!("{}", s.warn(&line));
        }
        if view.problems.is_empty() {
            outln!("integrity: everything received verifies");
        }
    }
    Ok(report_problems(&view.problems))
}

/// Reopens the stream after the last stored cursor, backing off exponentially
/// with jitter (0.5 s, then doubling up to 10 s, each wait stretched by a random
/// share of up to as much again, so devices cut off together do not all come
/// back at once); `None` if `deadline` passes first.
async fn reconnect(
    relay: &RelayClient,
    space: SpaceId,
    p: &Profile,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<EnvelopeStream>, ClientError> {
    use backon::BackoffBuilder;
    let mut waits = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let wait = waits.next().unwrap_or(Duration::from_secs(10));
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
            // Erased by the partner, or this device revoked: nothing to
            // reconnect to, ever.
            Err(e) if attune_core::erased::is_final(&e) => {
                return Err(p.explain_gone(e.into()));
            }
            Err(e) => {
                eprintln!(
                    "the relay is not reachable yet ({}); trying again",
                    inert::line(&e.to_string())
                );
            }
        }
    }
}

pub async fn watch(
    home: &std::path::Path,
    seconds: Option<u64>,
    notify: bool,
) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let report = match sync::sync(&mut p, &mut attune_core::ui::Quiet).await {
        Ok(r) => r,
        Err(e) => return Err(p.explain_gone(e)),
    };
    let mut problems_shown = report.problems.len();
    // Items arrive once; the set only guards against showing one twice.
    let mut shown: std::collections::HashSet<String> = std::collections::HashSet::new();
    let s = Style::stdout();
    let partner = partner_name(&p);
    eprintln!("watching for {partner}'s new items (ctrl-c to stop)");
    let deadline = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let relay = p.relay()?;
    let space = p.space()?;
    // Where the stream resumed: its cursors must grow from here. (Not the stored
    // resume point, which a `sync` in another terminal may have moved meanwhile.)
    let mut stream_last = p.db.last_cursor()?;
    let mut stream = match relay.stream(space, stream_last).await {
        Ok(s) => s,
        Err(e) => return Err(p.explain_gone(e.into())),
    };
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
        let incoming = sync::incoming(item.body);
        let envelope = match &incoming {
            Incoming::Envelope(b) => attune_proto::Envelope::decode(b).ok(),
            Incoming::Reveal(_) => None,
        };
        // An item from a device added after this device last read the roster:
        // read it first, so the item verifies.
        if let Some(env) = &envelope {
            if p.roster()?.device(&env.header.author).is_none() {
                sync::refresh_roster(&mut p).await?;
            }
        }
        let released = match &incoming {
            Incoming::Reveal(b) => attune_proto::HeldReveal::decode(b)
                .ok()
                .map(|h| h.header.exchange.to_hex()),
            Incoming::Envelope(_) => None,
        };
        p.db.store_received(&[(item.cursor, incoming)], now_ms())?;
        p.index_new()?;
        // Reveals happen here too, as soon as both have sealed.
        let due = p.settle()?;
        if !due.is_empty() {
            p.move_crossed(&due.crossed)?;
            for (exercise, key) in due.reveals_due {
                p.write(Body::Reveal { exercise, key }, false)?;
            }
            try_push(&mut p).await;
        }
        p.clear_dirty()?;
        sync::remember_heads(&p)?;
        if let Some(x) = released {
            let view = p.view_around(std::slice::from_ref(&x), false)?;
            if let Some(opened) = view
                .practice
                .exchange(&x)
                .filter(|o| o.their_answer().is_some())
            {
                if shown.insert(format!("opened {x}")) {
                    outln!("{}", crate::render::opened_line(opened, &partner, &s));
                    let _ = std::io::stdout().flush();
                    if notify {
                        crate::notify::show("attune", &format!("{partner}'s answer is open"));
                    }
                }
            }
        }
        let Some(env) = envelope else { continue };
        let view = p.view_around(&[env.header.entry.to_hex()], true)?;
        for e in &view.entries {
            if shown.insert(e.id.to_hex()) && !e.mine {
                outln!("{}", describe_entry(e, &view.practice, &s, &partner));
                let _ = std::io::stdout().flush();
                if notify {
                    crate::notify::show("attune", &notice(e, &partner));
                }
            }
        }
        if view.problems.len() > problems_shown {
            problems_shown = view.problems.len();
            report_problems(&view.problems);
        }
    }
    stream.close().await;
    Ok(0)
}

/// A notification's words for a partner's new item: its kind, never its content.
fn notice(e: &attune_core::profile::Entry, partner: &str) -> String {
    let what = match &e.item.body {
        Body::CheckIn(_) => "checked in",
        Body::Sealed { .. } => "sealed an answer",
        Body::Journal { .. } => "wrote in the journal",
        Body::Exercise { .. } => "started an exercise",
        Body::Reflect { .. } => "reflected what they heard",
        Body::Confirm { .. } | Body::Correct { .. } => "answered your reflection",
        Body::Timeout { .. } => "asked for a pause",
        Body::Resume => "is back from the pause",
        Body::Appreciation { .. } => "appreciated something",
        Body::Device { change, .. } => change.describe(),
        _ => "wrote something",
    };
    format!("{partner} {what}")
}

pub async fn leave(home: &std::path::Path, yes: bool) -> Result<i32, ClientError> {
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
        Err(e) if e.code() == Some(attune_proto::api::codes::DEVICE_REVOKED) => {
            // A removed device cannot erase the space; it can forget it here.
            p.reset_local()?;
            outln!("this device had been removed from the space, so it could not erase it (the space stays as it is for your other devices and your partner); this device's copy is cleared");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    }
    p.reset_local()?;
    outln!("left: the space is erased on the relay and on this device");
    Ok(0)
}
