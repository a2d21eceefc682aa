//! `attune demo`: a relay on a free loopback port with a temporary database, two
//! partners in temporary homes, pairing, a check-in and a journal entry each way,
//! both feeds, and what the relay actually stored.

use std::time::Duration;

use crate::style::Style;
use attune_core::item::{Answer, Body, CheckIn, Guess, Need};
use attune_core::pair;
use attune_core::profile::{ClientError, Profile};
use attune_core::sync;

fn step(s: &Style, text: &str) {
    outln!("\n{}", s.bold(&format!("== {text}")));
}

pub async fn run() -> Result<i32, ClientError> {
    let s = Style::stdout();
    let tmp = tempfile::tempdir()
        .map_err(|e| ClientError::Input(format!("no temporary directory: {e}")))?;
    let db = tmp.path().join("relay.sqlite3");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ClientError::Input(format!("could not open a loopback port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ClientError::Input(e.to_string()))?;
    let url = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = attune_relay::Config::for_tests(db.clone());
    let relay = tokio::spawn(attune_relay::serve(listener, config, async {
        let _ = stopped.await;
    }));

    step(
        &s,
        &format!("a relay is running on {url}, storing into {}", db.display()),
    );
    let mut alex = Profile::init(&tmp.path().join("alex"), "Alex", None)?;
    let mut sam = Profile::init(&tmp.path().join("sam"), "Sam", None)?;
    outln!("Alex and Sam each created a device identity (their keys never leave their homes).");

    step(&s, "pairing: Alex invites, Sam joins with the short code");
    let (code_tx, code_rx) = tokio::sync::oneshot::channel::<String>();
    let url2 = url.clone();
    let inviter = tokio::spawn(async move {
        let r = pair::invite(&mut alex, &url2, None, Duration::from_secs(60), |code| {
            outln!("Alex's screen shows: code: {code}");
            let _ = code_tx.send(code.to_string());
        })
        .await;
        r.map(|_| alex)
    });
    let code = code_rx
        .await
        .map_err(|_| ClientError::Pairing("the inviter stopped before showing a code".into()))?;
    outln!("Sam types: attune pair join {code}");
    pair::join(&mut sam, &code, &url, Duration::from_secs(60)).await?;
    let mut alex = inviter
        .await
        .map_err(|e| ClientError::Pairing(e.to_string()))??;
    let members = alex.roster()?.members().to_vec();
    let number = attune_crypto::safety_number(&members[0].identity_key, &members[1].identity_key);
    outln!("Both see the same safety number to compare in person: {number}");

    step(
        &s,
        "both check in, sealed, each guessing the other's mood first; then journals",
    );
    let day = attune_core::practice::day_of(attune_core::profile::now_ms());
    // `attune checkin` syncs before sealing (to answer a check-in waiting for
    // this one) and after (to send it, and open the pair if both are in).
    sync::sync(&mut alex, &mut attune_core::ui::Quiet).await?;
    alex.open_exchange(&Answer::CheckIn {
        day: day.clone(),
        checkin: CheckIn {
            mood: 6,
            feelings: vec!["tired".into(), "hopeful".into()],
            high: Some("a long walk at lunch".into()),
            low: Some("a tense meeting".into()),
            appreciate: Some("the coffee you made me".into()),
            need: Some(Need::Listen),
        },
        guess: Some(Guess {
            mood: Some(7),
            feelings: vec!["content".into(), "tired".into()],
        }),
    })?;
    alex.write(
        Body::Journal {
            text: "I felt unheard in that meeting; I'd like to talk tonight.".into(),
        },
        false,
    )?;
    alex.write(
        Body::Journal {
            text: "Private note: remember to ask about Sam's sister.".into(),
        },
        true,
    )?;
    sync::sync(&mut alex, &mut attune_core::ui::Quiet).await?;
    outln!("Alex checked in: sealed, with a guess of Sam's mood. The relay holds Alex's key back.");
    let before = sync::sync(&mut sam, &mut attune_core::ui::Quiet).await?;
    let _ = before;
    let view = sam.view_since(0)?;
    let now = attune_core::profile::now_ms();
    let attune_core::evening::Target::Join(exchange) =
        attune_core::evening::target(&view.practice, now)
    else {
        return Err(ClientError::Input(
            "the demo expected Alex's check-in to wait for Sam's".into(),
        ));
    };
    outln!("Sam sees a sealed check-in from Alex, and cannot read it before answering.");
    sam.seal_answer(
        &exchange,
        &Answer::CheckIn {
            day: day.clone(),
            checkin: CheckIn {
                mood: 8,
                feelings: vec!["content".into(), "playful".into()],
                high: Some("finished the book".into()),
                low: None,
                appreciate: Some("your patience this week".into()),
                need: Some(Need::Distraction),
            },
            guess: Some(Guess {
                mood: Some(5),
                feelings: vec!["tired".into()],
            }),
        },
    )?;
    sam.write(
        Body::Journal {
            text: "Let's cook together tonight?".into(),
        },
        false,
    )?;
    // Sam's sealed answer reaches the relay with its held key: the relay now
    // releases both keys at once, and each side checks them against the
    // commitments made when sealing.
    let r = sync::sync(&mut sam, &mut attune_core::ui::Quiet).await?;
    outln!("Sam checked in, guessing Alex's mood first; the relay released both keys at once.");
    for x in &r.opened {
        outln!("  Sam sees: {}", crate::render::opened_line(x, "Alex", &s));
    }
    let r = sync::sync(&mut alex, &mut attune_core::ui::Quiet).await?;
    for x in &r.opened {
        outln!("  Alex sees: {}", crate::render::opened_line(x, "Sam", &s));
    }

    for (name, p) in [("Alex", &alex), ("Sam", &sam)] {
        step(&s, &format!("{name}'s feed"));
        let view = p.view()?;
        let partner = p.partner_name()?.unwrap_or_default();
        for e in view.entries.iter().filter(|e| crate::render::visible(e)) {
            outln!(
                "{}",
                crate::render::describe_entry(e, &view.practice, &s, &partner)
            );
        }
        if !view.problems.is_empty() {
            for p in &view.problems {
                outln!("{}", s.bad(&format!("integrity problem: {}", p.detail)));
            }
        }
    }
    outln!("(Alex's private note is on Alex's feed only; the guesses were scored on each device.)");

    step(&s, "what the relay stored: ciphertext, ids and sizes only");
    let conn = rusqlite::Connection::open(&db).map_err(|e| ClientError::Input(e.to_string()))?;
    let mut stmt = conn
        .prepare("SELECT cursor, seq, length(data), hex(substr(data, 120, 24)) FROM envelopes ORDER BY cursor LIMIT 6")
        .map_err(|e| ClientError::Input(e.to_string()))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(|e| ClientError::Input(e.to_string()))?;
    outln!(
        "{}",
        s.dim("cursor  seq  bytes  ciphertext (first 24 bytes)")
    );
    for row in rows.flatten() {
        outln!(
            "{:>6}  {:>3}  {:>5}  {}…",
            row.0,
            row.1,
            row.2,
            row.3.to_lowercase()
        );
    }
    outln!("\nTry it for real: see README.md, \"Use it for real\".");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
    Ok(0)
}
