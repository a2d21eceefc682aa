//! `attune today` suggests one thing from recent patterns, computed on the device:
//! a partner's mood falling several days in a row, a reflection left unconfirmed,
//! support flowing one way, a long silence — each with a reason and a command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_tests::{pair, Attune, Relay};
use serde_json::Value;

const DAY: i64 = 86_400_000;

fn at(who: &Attune, ms: i64) -> Attune {
    let mut w = who.clone();
    w.env = vec![
        ("ATTUNE_TEST_NOW_MS".into(), ms.to_string()),
        ("TZ".into(), "UTC".into()),
    ];
    w
}

fn nudges(who: &Attune) -> Vec<(String, String)> {
    listed(who, "nudges")
}

/// What `today` lists as due.
fn due(who: &Attune) -> Vec<(String, String)> {
    listed(who, "due")
}

fn listed(who: &Attune, what: &str) -> Vec<(String, String)> {
    let v: Value = who.run(&["today", "--json"]).ok().json();
    v[what]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["reason"].as_str().unwrap().to_string(),
                n["command"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn patterns_become_gentle_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = Attune::new(&dir.path().join("a"));
    let b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &relay.url);
    let start = 1_788_000_000_000i64 - 1_788_000_000_000i64 % DAY + 12 * 3_600_000;

    // Sam's mood falls four days in a row (open check-ins, so Alex reads them at once).
    for (i, mood) in [8, 6, 5, 3].iter().enumerate() {
        let t = start + i as i64 * DAY;
        at(&b, t)
            .run(&["checkin", "--open", "--mood", &mood.to_string()])
            .ok();
    }
    let alex = at(&a, start + 3 * DAY);
    alex.run(&["sync"]).ok();
    let n = nudges(&alex);
    assert!(
        n.iter().any(
            |(r, c)| r.contains("Sam's mood has fallen 3 check-ins in a row")
                && c.starts_with("attune ask question")
        ),
        "{n:?}"
    );
    // No silence nudge yet: Sam wrote today.
    assert!(!n.iter().any(|(r, _)| r.contains("nothing new")), "{n:?}");

    // Sam reflects on Alex's entry; until Alex answers, it is due for Alex.
    let id = alex.run(&["journal", "-m", "a hard day"]).ok();
    let id = id
        .stdout
        .trim()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let sam = at(&b, start + 3 * DAY);
    sam.run(&["sync"]).ok();
    let r = sam.run(&["reflect", &id, "-m", "you sound worn out"]).ok();
    let rid = r.stdout.split(['(', ')']).nth(1).unwrap().to_string();
    alex.run(&["sync"]).ok();
    let n = due(&alex);
    assert!(
        n.iter()
            .any(|(r, c)| r.contains("waiting to know if they got it right")
                && c.contains(&format!("attune confirm {rid}"))),
        "{n:?}"
    );
    alex.run(&["confirm", &rid]).ok();
    assert!(
        !due(&alex)
            .iter()
            .any(|(r, _)| r.contains("waiting to know")),
        "answered reflections are no longer suggested"
    );

    // Support flows one way: Sam reflects six times, Alex never.
    for i in 0..5 {
        let j = alex
            .run(&["journal", "-m", &format!("more of my week {i}")])
            .ok();
        let jid = j
            .stdout
            .trim()
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_string();
        sam.run(&["sync"]).ok();
        sam.run(&["reflect", &jid, "-m", "I hear you"]).ok();
    }
    alex.run(&["sync"]).ok();
    let n = nudges(&alex);
    assert!(
        n.iter()
            .any(|(r, _)| r.contains("mostly flowed one way") && r.contains("0 by you, 6 by Sam")),
        "{n:?}"
    );

    // A long silence: nothing from Sam for 5 days.
    let later = at(&a, start + 8 * DAY);
    let n = nudges(&later);
    assert!(
        n.iter()
            .any(|(r, _)| r.contains("nothing new from Sam for 5 days")),
        "{n:?}"
    );
}
