//! `attune today`, `stats`, `report` and `challenge`.

use std::path::Path;

use serde_json::json;

use crate::cli::{json_text, paired, partner_name, write_private};
use crate::insights::{self, due_today, nudges};
use crate::practice::day_of;
use crate::profile::{now_ms, ClientError};
use crate::style::Style;

pub fn today(home: &Path, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let partner = partner_name(&p);
    let now = now_ms();
    let today = day_of(now);
    let challenge = p.db.get("challenge_start")?;
    let due = due_today(&view, &partner, &today, challenge.as_deref());
    let stats = insights::stats(&view, &today, 60);
    let suggestions = nudges(&view, &partner, now);
    let pause = view.practice.active_pause(now);
    if json_out {
        outln!(
            "{}",
            json_text(&json!({
                "today": today,
                "due": due,
                "my_streak": stats.my_streak,
                "partner_streak": stats.partner_streak,
                "nudges": suggestions,
                "pause": pause.map(|x| json!({ "by": if x.by_me { "me" } else { "partner" }, "until": x.until })),
            }))
        );
        return Ok(0);
    }
    let s = Style::stdout();
    outln!("{}", s.bold(&format!("Today, {today}")));
    if let Some(x) = pause {
        outln!(
            "{}",
            s.warn(&if x.by_me {
                "you are taking a pause; `attune resume` when you are ready".to_string()
            } else {
                format!("{partner} asked for a pause; give them the time")
            })
        );
    }
    if due.is_empty() {
        outln!("nothing is due; well done");
    }
    for d in &due {
        outln!("• {} — {}", d.reason, s.dim(&d.command));
    }
    outln!(
        "streaks: you {} day(s), {partner} {} day(s) (one missed day is forgiven)",
        stats.my_streak,
        stats.partner_streak
    );
    for n in suggestions.iter().take(3) {
        outln!(
            "{} {} — {}",
            s.bold("a thought:"),
            n.reason,
            s.dim(&n.command)
        );
    }
    Ok(0)
}

fn bar(v: Option<u8>) -> String {
    match v {
        Some(v) => format!(
            "{}{} {:>2}",
            "█".repeat(v as usize),
            "·".repeat(10 - v.min(10) as usize),
            v
        ),
        None => format!("{} --", " ".repeat(10)),
    }
}

pub fn stats(home: &Path, days: u32, json_out: bool) -> Result<i32, ClientError> {
    if !(1..=3650).contains(&days) {
        return Err(ClientError::Input("--days must be from 1 to 3650".into()));
    }
    let p = paired(home)?;
    let view = p.view()?;
    let partner = partner_name(&p);
    let today = day_of(now_ms());
    let st = insights::stats(&view, &today, days);
    if json_out {
        outln!("{}", json_text(&st));
        return Ok(0);
    }
    let s = Style::stdout();
    outln!("{}", s.bold(&format!("Moods, last {days} days")));
    outln!(
        "{}",
        s.dim(&format!("{:<10}  {:<13}  {}", "day", "you", partner))
    );
    for (day, mine, theirs) in &st.days {
        if mine.is_none() && theirs.is_none() {
            continue;
        }
        outln!("{day}  {}  {}", s.me(&bar(*mine)), s.partner(&bar(*theirs)));
    }
    let avg = |v: Option<f64>| v.map_or("--".into(), |v| format!("{v:.1}"));
    outln!(
        "average mood: you {}, {partner} {}",
        avg(st.my_average_mood),
        avg(st.partner_average_mood)
    );
    outln!("{}", s.bold("Reading each other"));
    if st.accuracy.is_empty() {
        outln!("no revealed guesses yet: guess when you check in (sealed check-ins)");
    }
    for a in &st.accuracy {
        let e = |v: Option<u8>| v.map_or("-".to_string(), |v| v.to_string());
        outln!(
            "{}  your guess off by {}, {partner}'s off by {}",
            a.day,
            e(a.my_mood_error),
            e(a.their_mood_error)
        );
    }
    outln!(
        "mean mood error: you {}, {partner} {}",
        avg(st.my_mean_mood_error),
        avg(st.partner_mean_mood_error)
    );
    outln!("{}", s.bold("Streaks and balance"));
    outln!(
        "check-in streak: you {}, {partner} {}",
        st.my_streak,
        st.partner_streak
    );
    outln!(
        "reflections: you {}, {partner} {}; asked for listening or support: you {}, {partner} {}",
        st.balance.reflections_by_me,
        st.balance.reflections_by_partner,
        st.balance.needs_support_me,
        st.balance.needs_support_partner
    );
    Ok(0)
}

pub fn report(home: &Path, month: Option<String>, out: &Path) -> Result<i32, ClientError> {
    let month = month.unwrap_or_else(|| day_of(now_ms())[..7].to_string());
    if crate::report::month_days(&month).is_empty() {
        return Err(ClientError::Input(format!(
            "--month takes YYYY-MM, not '{month}'"
        )));
    }
    let p = paired(home)?;
    let view = p.view()?;
    let html = crate::report::render(&view, &p.name(), &partner_name(&p), &month);
    write_private(out, html.as_bytes())?;
    outln!("wrote the report for {month} to {}", out.display());
    Ok(0)
}

pub fn challenge(home: &Path, start: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    if start {
        let today = day_of(now_ms());
        p.db.set("challenge_start", &today)?;
        outln!("30-day empathy challenge started today; `attune today` shows each day's exercise");
    } else {
        p.db.set("challenge_start", "")?;
        outln!("challenge stopped");
    }
    Ok(0)
}
