//! `attune today`, `stats`, `report` and `challenge`.

use std::path::Path;

use serde_json::json;

use crate::common::{json_text, paired, partner_name, write_private, DAY_MS};
use comfy_table::{Attribute, Cell, CellAlignment, Color, Table};

use crate::style::Style;
use crate::words;
use attune_core::insights::{self, due_today, nudges};
use attune_core::practice::day_of;
use attune_core::profile::{now_ms, ClientError};

pub fn today(home: &Path, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    // Five weeks: what is due, recent moods for the nudges, and (from the
    // store) the days checked in for the streaks.
    let view = p.view_since(now_ms() - 35 * DAY_MS)?;
    let partner = partner_name(&p);
    let now = now_ms();
    let today = day_of(now);
    let challenge = p
        .challenge_start()?
        .map(|d| d.format("%Y-%m-%d").to_string());
    let evening = due_today(&view, &partner, &today, now, challenge.as_deref());
    let due = &evening.due;
    let stats = insights::stats(&view, &today, 60);
    let suggestions = nudges(&view, &partner, now);
    let pause = view.practice.active_pause(now);
    if json_out {
        outln!(
            "{}",
            json_text(&json!({
                "today": today,
                "due": due,
                "waiting": evening.waiting,
                "my_streak": stats.my_streak,
                "partner_streak": stats.partner_streak,
                "nudges": suggestions,
                "device_changes": crate::common::device_json(&p, now - 7 * DAY_MS),
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
    for line in crate::common::device_lines(&p, now - 7 * DAY_MS) {
        outln!("{}", s.warn(&line));
    }
    if due.is_empty() {
        outln!("nothing is due; well done");
    }
    for d in due {
        outln!("• {} — {}", d.reason, s.dim(&d.command));
    }
    for w in &evening.waiting {
        outln!("{} {w}", s.dim("…"));
    }
    outln!(
        "streaks: you {}, {partner} {} (one missed day is forgiven)",
        words::count(stats.my_streak, "day", "days"),
        words::count(stats.partner_streak, "day", "days")
    );
    // One suggestion at a time: the first that fits what exists.
    for n in suggestions.iter().take(1) {
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

/// A table for the terminal: rounded lines on a colour terminal; plain columns
/// without lines or colours when piped or with NO_COLOR.
fn table(s: &Style, header: [&str; 3]) -> Table {
    let mut t = Table::new();
    if s.is_on() {
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .apply_modifier(comfy_table::modifiers::UTF8_ROUND_CORNERS)
            .enforce_styling();
    } else {
        t.load_preset(comfy_table::presets::NOTHING).force_no_tty();
    }
    // Names are inert already (partner_name); the header is attune's own.
    t.set_header(header.map(|h| Cell::new(h).add_attribute(Attribute::Bold)));
    t
}

fn styled(cell: Cell, s: &Style, colour: Color) -> Cell {
    if s.is_on() {
        cell.fg(colour)
    } else {
        cell
    }
}

pub fn stats(home: &Path, days: u32, json_out: bool) -> Result<i32, ClientError> {
    if !(1..=3650).contains(&days) {
        return Err(ClientError::Input("--days must be from 1 to 3650".into()));
    }
    let p = paired(home)?;
    // The period, and a day before it for the time zones.
    let view = p.view_since(now_ms() - (i64::from(days) + 1) * DAY_MS)?;
    let partner = partner_name(&p);
    let today = day_of(now_ms());
    let st = insights::stats(&view, &today, days);
    if json_out {
        outln!("{}", json_text(&st));
        return Ok(0);
    }
    let s = Style::stdout();
    outln!("{}", s.bold(&format!("Moods, last {days} days")));
    let mut moods = table(&s, ["day", "you", partner.as_str()]);
    for (day, mine, theirs) in &st.days {
        if mine.is_none() && theirs.is_none() {
            continue;
        }
        moods.add_row([
            Cell::new(day),
            styled(Cell::new(bar(*mine)), &s, Color::Cyan),
            styled(Cell::new(bar(*theirs)), &s, Color::Magenta),
        ]);
    }
    if moods.row_count() == 0 {
        outln!("no check-ins in these days");
    } else {
        outln!("{moods}");
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
    } else {
        let theirs = format!("{partner}'s guess off by");
        let mut guesses = table(&s, ["day", "your guess off by", theirs.as_str()]);
        let e = |v: Option<u8>| v.map_or("-".to_string(), |v| v.to_string());
        for a in &st.accuracy {
            guesses.add_row([
                Cell::new(&a.day),
                Cell::new(e(a.my_mood_error)).set_alignment(CellAlignment::Right),
                Cell::new(e(a.their_mood_error)).set_alignment(CellAlignment::Right),
            ]);
        }
        outln!("{guesses}");
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
    if attune_core::report::month_days(&month).is_empty() {
        return Err(ClientError::Input(format!(
            "--month takes YYYY-MM, not '{month}'"
        )));
    }
    let p = paired(home)?;
    let start = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis() - DAY_MS)
        .unwrap_or(0);
    let view = p.view_since(start)?;
    let html = attune_core::report::render(&view, &p.name(), &partner_name(&p), &month);
    write_private(out, html.as_bytes())?;
    outln!("wrote the report for {month} to {}", out.display());
    Ok(0)
}

pub async fn challenge(home: &Path, start: bool) -> Result<i32, ClientError> {
    let mut p = crate::common::writing(home).await?;
    if start {
        let today = chrono::NaiveDate::parse_from_str(&day_of(now_ms()), "%Y-%m-%d").ok();
        p.set_challenge_start(today)?;
        outln!("30-day empathy challenge started today; `attune today` shows each day's exercise, on each of your devices");
    } else {
        p.set_challenge_start(None)?;
        outln!("challenge stopped, on each of your devices");
    }
    crate::common::send(&mut p).await;
    Ok(0)
}
