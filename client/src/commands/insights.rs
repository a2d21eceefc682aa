//! `attune today`, `stats`, `report` and `challenge`.

use std::path::Path;

use serde_json::json;

use crate::common::{json_text, paired, partner_name, write_private, DAY_MS};

use crate::style::Style;
use crate::words;
use attune_core::insights::{self, due_today, nudges};
use attune_core::practice::day_of;
use attune_core::profile::{now_ms, ClientError};
use attune_core::report::{self, Period};

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
    let coach_on = p.coach_on()?;
    let coach = if coach_on {
        attune_core::coach::picker::pick(
            &attune_core::coach::picker::signs(&view, now, COACH_DAYS),
            &partner,
        )
    } else {
        None
    };
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
                "coach": coach,
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
    // What helps during a pause is the coach's, like its note in `timeout`.
    if coach_on && pause.is_some_and(|x| x.by_me) {
        for line in PAUSE_HELP {
            outln!("  {}", s.dim(line));
        }
    }
    // One suggestion at a time: the coach's pick, else the first nudge that fits.
    if let Some(c) = &coach {
        outln!(
            "{} {} — {}",
            s.bold(&format!("the coach suggests {}:", c.practice)),
            c.reason,
            s.dim(&c.command)
        );
        return Ok(0);
    }
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

/// Days the coach looks back over.
const COACH_DAYS: u32 = 14;

/// What helps during a pause one asked for.
pub const PAUSE_HELP: &[&str] = &[
    "while you pause: breathe slowly, in for four and out for six, a few times;",
    "name what you feel, to yourself (`attune feelings` has words for it);",
    "when you come back, start with what you heard them say, then \"I feel … I need …\".",
];

/// `attune coach`: what the last days show, and the practice to try next.
pub fn coach(home: &Path, days: u32, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let now = now_ms();
    let days = days.clamp(1, 365);
    let view = p.view_since(now - i64::from(days) * DAY_MS)?;
    let partner = partner_name(&p);
    let signs = attune_core::coach::picker::signs(&view, now, days);
    let pick = attune_core::coach::picker::pick(&signs, &partner);
    if json_out {
        outln!("{}", json_text(&json!({ "signs": signs, "pick": pick })));
        return Ok(0);
    }
    let s = Style::stdout();
    outln!(
        "{}",
        s.bold(&format!(
            "The last {}",
            words::count(days as usize, "day", "days")
        ))
    );
    outln!(
        "  timeouts: {}; reflections: {} by you, {} by {partner}; mood guesses: {}, {} off by more than a point",
        signs.pauses,
        signs.reflections_by_me,
        signs.reflections_by_partner,
        signs.guesses,
        signs.guesses_off
    );
    match &pick {
        Some(c) => {
            outln!(
                "{} {}",
                s.bold(&format!("Next, try {}:", c.practice)),
                c.reason
            );
            outln!("  {}", s.dim(&c.command));
        }
        None => outln!("Nothing stands out: keep doing what you do."),
    }
    outln!(
        "{}",
        s.dim("(worked out on this device from your verified items; nothing was sent)")
    );
    Ok(0)
}

/// One character per day: a value of 1..=max as one of eight heights (1 the
/// lowest, max the highest), `·` for none.
fn sparkline(values: impl Iterator<Item = Option<f64>>, max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .map(|v| match v {
            Some(v) => {
                let step = ((v - 1.0) / (max - 1.0) * 7.0).round().clamp(0.0, 7.0) as usize;
                BARS[step]
            }
            None => '·',
        })
        .collect()
}

pub fn stats(home: &Path, days: u32, json_out: bool) -> Result<i32, ClientError> {
    if !(1..=3650).contains(&days) {
        return Err(ClientError::Input("--days must be from 1 to 3650".into()));
    }
    let p = paired(home)?;
    let today = today_date();
    let period = Period::last_days(today, days);
    // The period, and a day before it for the time zones.
    let view = p.view_since(now_ms() - (i64::from(days) + 1) * DAY_MS)?;
    let partner = partner_name(&p);
    let st = insights::stats(&view, &day_of(now_ms()), days);
    let streaks = p.streaks_at(period.last.min(today))?;
    let r = report::compute(&view, period, today, p.challenge_start()?, streaks);
    if json_out {
        let mut v = serde_json::to_value(&st).unwrap_or_default();
        v["report"] = serde_json::to_value(&r).unwrap_or_default();
        outln!("{}", json_text(&v));
        return Ok(0);
    }
    let s = Style::stdout();
    let name_w = partner.chars().count().max(3);
    outln!(
        "{}",
        s.bold(&format!("Last {days} days ({})", period.label()))
    );
    if !r.has_data {
        outln!("nothing was written in these days: `attune checkin` starts the picture");
        return Ok(0);
    }
    let line =
        |who: &str, colour: fn(&Style, &str) -> String, values: Vec<Option<f64>>, max: f64| {
            outln!(
                "  {who:<name_w$}  {}",
                colour(&s, &sparkline(values.into_iter(), max))
            );
        };
    let avg = |v: Option<f64>| v.map_or("--".into(), |v| format!("{v:.1}"));
    outln!("{}", s.bold("Moods"));
    line(
        "you",
        Style::me,
        r.days.iter().map(|d| d.me.map(f64::from)).collect(),
        10.0,
    );
    line(
        &partner,
        Style::partner,
        r.days.iter().map(|d| d.partner.map(f64::from)).collect(),
        10.0,
    );
    outln!(
        "  average: you {}, {partner} {}; days checked in: you {}, {partner} {}",
        avg(r.me.average_mood),
        avg(r.partner.average_mood),
        r.me.checkin_days,
        r.partner.checkin_days
    );
    outln!(
        "{}",
        s.bold("Reading each other (how far each guess was; lower is closer)")
    );
    if r.me.reading.days_guessed + r.partner.reading.days_guessed == 0 {
        outln!("  no guesses opened in these days: guess the other's mood when you check in");
    } else {
        line(
            "you",
            Style::me,
            r.days
                .iter()
                .map(|d| d.my_error.map(|e| f64::from(e) + 1.0))
                .collect(),
            10.0,
        );
        line(
            &partner,
            Style::partner,
            r.days
                .iter()
                .map(|d| d.partner_error.map(|e| f64::from(e) + 1.0))
                .collect(),
            10.0,
        );
        for (reader, read, side) in [
            ("you", partner.as_str(), &r.me),
            (partner.as_str(), "you", &r.partner),
        ] {
            let mut sentence = report::html::reading_sentence(reader, read, side);
            if let Some(t) = report::html::trend_sentence(side) {
                sentence.push_str("; ");
                sentence.push_str(&t);
            }
            outln!("  {sentence}");
        }
        outln!(
            "  feelings guessed right: you {} of {} guesses, {partner} {} of {}",
            r.me.reading.feelings_hit,
            r.me.reading.feelings_guessed,
            r.partner.reading.feelings_hit,
            r.partner.reading.feelings_guessed
        );
    }
    if r.me.quadrants.total() + r.partner.quadrants.total() > 0 {
        outln!("{}", s.bold("Feelings named"));
        for ((q, mine), (_, theirs)) in
            r.me.quadrants
                .each()
                .into_iter()
                .zip(r.partner.quadrants.each())
        {
            outln!(
                "  {:<18} you {mine:>3}, {partner} {theirs:>3}",
                report::html::quadrant_short(q)
            );
        }
    }
    outln!("{}", s.bold("Needs and listening"));
    for (who, other, side) in [
        ("you", partner.as_str(), &r.me),
        (partner.as_str(), "you", &r.partner),
    ] {
        let asked: Vec<String> = side
            .needs
            .each()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(need, n)| format!("{} {n}", report::html::need_short(need)))
            .collect();
        if asked.is_empty() {
            outln!("  {who} asked for nothing in particular");
        } else {
            outln!(
                "  {who} asked for: {}; {other} answered with a reflection within a day {} of {} times",
                asked.join(", "),
                side.needs.answered,
                side.needs.answerable
            );
        }
    }
    for (who, side) in [("you", &r.me), (partner.as_str(), &r.partner)] {
        let l = &side.listening;
        outln!(
            "  {who} wrote {}; confirmed at the first try {}, after a correction {}",
            words::count(l.reflections, "reflection", "reflections"),
            l.first_try,
            l.after_corrections
        );
    }
    outln!("{}", s.bold("Streaks"));
    outln!(
        "  check-in streak: you {}, {partner} {} (one missed day is forgiven); longest run in these days: you {}, {partner} {}",
        st.my_streak,
        st.partner_streak,
        r.me.longest_run,
        r.partner.longest_run
    );
    Ok(0)
}

fn today_date() -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(&day_of(now_ms()), "%Y-%m-%d").unwrap_or_default()
}

pub fn report(
    home: &Path,
    month: Option<String>,
    year: Option<String>,
    out: Option<&Path>,
    json_out: bool,
) -> Result<i32, ClientError> {
    let today = today_date();
    let period = match (month, year) {
        (_, Some(y)) => Period::year(y.trim()),
        (Some(m), None) if m.trim().is_empty() => Ok(Period::month_of(today)),
        (Some(m), None) => Period::month(m.trim()),
        (None, None) => Ok(Period::month_of(today)),
    }
    .map_err(|e| ClientError::Input(e.to_string()))?;
    let p = paired(home)?;
    let view = p.view_since(period.read_from_ms())?;
    let streaks = p.streaks_at(period.last.min(today))?;
    let r = report::compute(&view, period, today, p.challenge_start()?, streaks);
    if let Some(out) = out {
        let html = report::html::page(&r, &p.name(), &partner_name(&p));
        write_private(out, html.as_bytes())?;
        if !json_out {
            outln!("wrote the report for {} to {}", r.label, out.display());
            if !r.has_data {
                outln!(
                    "nothing was written in {}: the page says so, with no empty charts",
                    r.label
                );
            }
        }
    }
    if json_out {
        outln!("{}", json_text(&r));
    }
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
