//! The coach through the real binaries: a heated journal draft gets one
//! suggestion and the offer to hold it, a calm one gets nothing, `attune
//! config coach off` turns it off, and nothing the coach computed travels: the
//! relay stores the same envelope, and the partner reads the same item, with
//! the coach on or off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_tests::{Attune, Couple, Relay};
use serde_json::Value;

const HEATED: &str = "You never listen to me and I'm sick of it. This is your fault!";
/// The same length, so its envelope may be compared with HEATED's.
const HEATED_TOO: &str = "You never listen to me and I'm sick of it. This is your fault.";
const CALM: &str = "Dinner with your parents was lovely tonight, thank you for organising it.";

/// Stored envelopes, and the size of the newest.
fn relay_state(relay: &Relay) -> (i64, i64) {
    (
        relay.count("SELECT COUNT(*) FROM envelopes"),
        relay.count("SELECT COALESCE(MAX(LENGTH(data)), 0) FROM envelopes WHERE cursor = (SELECT MAX(cursor) FROM envelopes)"),
    )
}

/// The partner's decrypted item for the journal entry with `text`.
fn partner_item(b: &Attune, text: &str) -> Value {
    b.run(&["sync"]).ok();
    let feed = b.run(&["feed", "--json"]).ok().json();
    let entry = feed["entries"]
        .as_array()
        .or_else(|| feed.as_array())
        .expect("a list of entries")
        .iter()
        .find(|e| e.to_string().contains(text))
        .unwrap_or_else(|| panic!("{text:?} reached the partner: {feed}"))
        .clone();
    entry
}

/// The keys of an item as the partner sees it, values aside.
fn shape(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn a_heated_draft_gets_one_suggestion_a_calm_one_nothing_and_the_relay_sees_no_difference() {
    let c = Couple::new(&[]);

    let calm = c.a.run(&["journal", "-m", CALM]).ok();
    assert!(!calm.stderr.contains("coach:"), "{}", calm.stderr);

    let before = relay_state(&c.relay);
    let heated = c.a.run(&["journal", "-m", HEATED]).ok();
    let note = &heated.stderr;
    assert_eq!(note.matches("coach:").count(), 1, "one note: {note}");
    assert!(note.contains("heat of the moment"), "{note}");
    assert!(
        note.contains("I feel"),
        "an I-statement to start from: {note}"
    );
    assert!(
        note.contains("--send-after 30m"),
        "the offer to hold it: {note}"
    );
    assert!(
        note.contains("nothing about this was sent anywhere"),
        "{note}"
    );
    assert!(note.contains("attune config coach off"), "{note}");
    // It never blocks: without a terminal to ask at, the entry was sent.
    assert!(heated.stdout.contains("written"), "{}", heated.stdout);
    let with_coach = relay_state(&c.relay);
    assert_eq!(with_coach.0, before.0 + 1, "one envelope for one entry");
    let seen_with = partner_item(&c.b, HEATED);

    let off = c.a.run(&["config", "coach", "off"]).ok();
    assert!(off.stdout.contains("coach off"), "{}", off.stdout);
    let shown = c.a.run(&["config", "coach"]).ok();
    assert!(shown.stdout.starts_with("coach off"), "{}", shown.stdout);
    let again = c.a.run(&["journal", "-m", HEATED_TOO]).ok();
    assert!(!again.stderr.contains("coach:"), "{}", again.stderr);
    let without_coach = relay_state(&c.relay);
    assert_eq!(
        without_coach.0,
        with_coach.0 + 1,
        "one envelope for one entry"
    );
    assert_eq!(
        without_coach.1, with_coach.1,
        "the same draft makes an envelope of the same size with the coach on or off"
    );
    let seen_without = partner_item(&c.b, HEATED_TOO);
    assert_eq!(
        shape(&seen_with),
        shape(&seen_without),
        "the partner's item carries nothing the coach computed"
    );
    for v in [&seen_with, &seen_without] {
        let text = v.to_string();
        assert!(
            !text.contains("heated") && !text.contains("coach") && !text.contains("compound"),
            "{text}"
        );
    }

    // On again: the note comes back.
    c.a.run(&["config", "coach", "ON"]).ok();
    let back = c.a.run(&["journal", "-m", "You ALWAYS do this!!"]).ok();
    assert!(back.stderr.contains("coach:"), "{}", back.stderr);

    // A private entry reaches nobody: no note for it.
    let private = c.a.run(&["journal", "--private", "-m", HEATED]).ok();
    assert!(!private.stderr.contains("coach:"), "{}", private.stderr);
}

#[test]
fn pain_shared_in_the_first_person_gets_no_note() {
    let c = Couple::new(&[]);
    let sad =
        c.a.run(&[
            "journal",
            "-m",
            "I felt so alone tonight. I cried in the car and I don't know why.",
        ])
        .ok();
    assert!(!sad.stderr.contains("coach:"), "{}", sad.stderr);
}

/// `reflect` starts from the partner's own words said back, with the feeling
/// they name; the sentence is a start, refused if sent unchanged.
#[test]
fn reflection_help_starts_from_their_words_and_is_never_sent_as_it_is() {
    let c = Couple::new(&[]);
    c.a.run(&[
        "journal",
        "-m",
        "I was so tired after my shift and nobody asked how I was. Then the bus was late.",
    ])
    .ok();
    c.b.run(&["sync"]).ok();
    let feed = c.b.run(&["feed", "--json"]).ok().json();
    let id = feed["entries"][0]["id"].as_str().unwrap().to_string();
    let starter = c.b.run(&["reflect", &id[..8], "--starter"]).ok();
    let sentence = starter.stdout.trim().to_string();
    assert_eq!(
        sentence,
        "It sounds like you felt tired when you were so tired after your shift and nobody asked how you were — did I get that right?"
    );
    let unchanged = c.b.run_with_stdin(&["reflect", &id[..8]], Some(&sentence));
    assert_ne!(unchanged.code, 0);
    assert!(
        unchanged.stderr.contains("in your own words"),
        "{}",
        unchanged.stderr
    );
    // Kept as it was beside words of one's own: still the coach talking.
    let beside = c.b.run_with_stdin(
        &["reflect", &id[..8]],
        Some(&format!("{sentence}\nAnd I'm sorry I wasn't there.")),
    );
    assert_ne!(beside.code, 0);
    assert!(
        beside.stderr.contains("still there as it was"),
        "{}",
        beside.stderr
    );
    let kinds = |who: &Attune| {
        who.run(&["feed", "--json"]).ok().json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "reflect")
            .count()
    };
    assert_eq!(kinds(&c.b), 0, "nothing was written");
    let own = c.b.run_with_stdin(
        &["reflect", &id[..8]],
        Some("It sounds like the shift wore you out and you felt unseen — right?"),
    );
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert_eq!(kinds(&c.b), 1);
}

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `who`, with the clock at `at`.
fn at(who: &Attune, at: i64) -> Attune {
    let mut w = Attune {
        home: who.home.clone(),
        env: who.env.clone(),
    };
    w.env.retain(|(k, _)| k != "ATTUNE_TEST_NOW_MS");
    w.env.push(("ATTUNE_TEST_NOW_MS".into(), at.to_string()));
    w
}

/// `attune coach --json`'s pick: (pattern, reason, command).
fn coach_pick(who: &Attune) -> Option<(String, String, String)> {
    let v = who.run(&["coach", "--json"]).ok().json();
    let p = &v["pick"];
    if p.is_null() {
        return None;
    }
    Some((
        p["pattern"].as_str().unwrap().to_string(),
        p["reason"].as_str().unwrap().to_string(),
        p["command"].as_str().unwrap().to_string(),
    ))
}

/// The suggestion picker on four seeded histories, one per pattern, each
/// through the real binaries; the expected picks are golden.
#[test]
fn the_coach_picks_the_practice_that_fits_each_history() {
    // Nothing yet: no pick.
    let quiet = Couple::new(&[]);
    assert_eq!(coach_pick(&quiet.b), None);

    // Three timeouts in a week: the repair conversation.
    let c = Couple::new(&[]);
    for _ in 0..3 {
        let t = c.a.run(&["timeout", "10m", "-m", "I need a break"]).ok();
        assert!(
            t.stdout.contains("breathe"),
            "what helps during a pause: {}",
            t.stdout
        );
        c.a.run(&["resume"]).ok();
    }
    c.b.run(&["sync"]).ok();
    assert_eq!(
        coach_pick(&c.b),
        Some((
            "repeated_pauses".into(),
            "You two needed 3 timeouts in the last 14 days; when things are calm again, each writing what the other felt helps you repair together.".into(),
            "attune ask perspective-swap".into(),
        ))
    );
    let today = c.b.run(&["today"]).ok();
    assert!(
        today
            .stdout
            .contains("the coach suggests the repair conversation:"),
        "{}",
        today.stdout
    );

    // Sam listens, Alex does not: the weekly empathy swap.
    let c = Couple::new(&[]);
    for i in 0..4 {
        c.a.run(&["journal", "-m", &format!("a long day at work, number {i}")])
            .ok();
    }
    c.b.run(&["sync"]).ok();
    let feed = c.b.run(&["feed", "--json"]).ok().json();
    for e in feed["entries"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        c.b.run(&[
            "reflect",
            &id[..8],
            "-m",
            "It sounds like work wore you out.",
        ])
        .ok();
    }
    assert_eq!(
        coach_pick(&c.b),
        Some((
            "one_way_support".into(),
            "Listening has gone mostly one way lately (4 reflections by you, 0 by Alex): a swap where each shares a struggle gives Alex a turn to listen to you too.".into(),
            "attune ask question \"One moment I felt seen this week, and one I missed you\"".into(),
        ))
    );

    // Guesses far off two evenings running: the guessing game and emotion naming.
    let c = Couple::new(&[]);
    let now = now_ms();
    for day in [2, 1] {
        let t = now - day * DAY_MS;
        let checkin = |who: &Attune, mood: &str, guess: &str| {
            at(who, t)
                .run(&[
                    "checkin",
                    "--mood",
                    mood,
                    "--feel",
                    "calm",
                    "--high",
                    "h",
                    "--low",
                    "l",
                    "--appreciate",
                    "a",
                    "--need",
                    "space",
                    "--guess-mood",
                    guess,
                    "--guess-feel",
                    "tired",
                ])
                .ok();
        };
        // Alex (8) guesses Sam at 9, Sam (3) guesses Alex at 2: both off by 6.
        checkin(&c.a, "8", "9");
        checkin(&c.b, "3", "2");
        at(&c.a, t + 60_000).run(&["sync"]).ok();
    }

    assert_eq!(
        coach_pick(&c.b),
        Some((
            "missed_guesses".into(),
            "4 of your last 4 mood guesses were off by more than a point: guessing each evening, and naming three feelings each, tunes you in.".into(),
            "attune checkin (guess first), then attune ask emotion-naming".into(),
        ))
    );

    // Nothing from Alex for six days: an appreciation.
    let c = Couple::new(&[]);
    at(&c.a, now - 6 * DAY_MS - 3_600_000)
        .run(&["journal", "-m", "see you at the weekend"])
        .ok();
    c.b.run(&["sync"]).ok();
    assert_eq!(
        coach_pick(&c.b),
        Some((
            "long_silence".into(),
            "Nothing has come from Alex for 6 days: a few words of appreciation are an easy way back in.".into(),
            "attune appreciate \"…\"".into(),
        ))
    );
}

/// Answers, reflections and corrections the partner will read get the same
/// check (without a hold, which only journal entries have), once, and are sent.
#[test]
fn a_heated_reflection_correction_or_answer_gets_the_note_and_is_still_sent() {
    let c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "Work was a lot today."]).ok();
    c.b.run(&["sync"]).ok();
    let feed = c.b.run(&["feed", "--json"]).ok().json();
    let jid = feed["entries"][0]["id"].as_str().unwrap().to_string();
    let r =
        c.b.run(&[
            "reflect",
            &jid[..8],
            "-m",
            "You ALWAYS complain about work, it's pathetic.",
        ])
        .ok();
    assert_eq!(r.stderr.matches("coach:").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("after a pause and a second look"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("--send-after"),
        "only journal entries can be held: {}",
        r.stderr
    );
    assert!(r.stdout.contains("reflected"), "still sent: {}", r.stdout);

    c.a.run(&["sync"]).ok();
    let feed = c.a.run(&["feed", "--json"]).ok().json();
    let rid = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reflect")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let corrected =
        c.a.run(&[
            "correct",
            &rid[..8],
            "-m",
            "No. You never listen, that's your fault.",
        ])
        .ok();
    assert_eq!(
        corrected.stderr.matches("coach:").count(),
        1,
        "{}",
        corrected.stderr
    );

    let asked = c.a.run(&["ask", "question", "How was your week?"]).ok();
    let _ = asked;
    c.b.run(&["sync"]).ok();
    let feed = c.b.run(&["feed", "--json"]).ok().json();
    let xid = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "exercise")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answered =
        c.b.run(&[
            "answer",
            &xid[..8],
            "-m",
            "Awful, because of you. Stop ignoring me!!",
        ])
        .ok();
    assert_eq!(
        answered.stderr.matches("coach:").count(),
        1,
        "{}",
        answered.stderr
    );
    assert!(
        answered.stdout.contains("answer sealed"),
        "{}",
        answered.stdout
    );
}
