//! The report as one self-contained HTML page (no network, no scripts), laid out
//! for a phone and for print. maud escapes every text; the partner's text is
//! also made inert (control and bidi characters shown escaped).

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::numbers::{short_month, Report, Side};
use super::period::PeriodKind;
use super::svg::{self, Series, YAxis, ME, PARTNER};
use crate::vocab::Quadrant;

fn inert(s: &str) -> String {
    crate::inert::lines(s).into_owned()
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:780px;margin:0 auto;padding:1em;color:#2b2b2b;background:#fff;line-height:1.45}\
h1{font-weight:650;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #e3e0d8;padding-bottom:.2em}\
.me{color:#1f7a8c;font-weight:600}.partner{color:#a23b72;font-weight:600}\
.legend-key{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:-.1em;margin-right:.3em}\
svg.chart{max-width:100%;height:auto;display:block;margin:.6em 0}svg.scale{width:330px;max-width:100%;height:auto}\
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}td.n{text-align:right}\
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}.pair>div{background:#faf8f3;border-radius:6px;padding:.6em .9em}\
.pair h3{margin:.2em 0 .4em}.muted{color:#777}.empty{background:#faf8f3;border-radius:6px;padding:1em;font-size:1.1em}\
@media (max-width:560px){.pair{grid-template-columns:1fr}}\
@media print{body{max-width:none}h2{break-after:avoid}svg,table,.pair{break-inside:avoid}}";

fn who(class: &str, name: &str) -> Markup {
    let colour = if class == "me" { ME } else { PARTNER };
    html! { span class=(class) { span class="legend-key" style={"background:" (colour)} {} (name) } }
}

fn one(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |v| format!("{v:.1}"))
}

/// A table cell: the value, or a dash.
fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"))
}

fn days_word(n: usize) -> &'static str {
    if n == 1 {
        "day"
    } else {
        "days"
    }
}

fn times(n: usize) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// "you read Sam within 1 point on 18 of 24 days".
pub fn reading_sentence(reader: &str, read: &str, side: &Side) -> String {
    let r = &side.reading;
    if r.days_guessed == 0 {
        return format!("{reader} made no mood guesses of {read} that opened");
    }
    format!(
        "{reader} read {read} within 1 point on {} of {} {}, off by {} on average",
        r.within_one,
        r.days_guessed,
        days_word(r.days_guessed),
        one(r.mean_error)
    )
}

/// How the guesses moved between the period's first and second half.
pub fn trend_sentence(side: &Side) -> Option<String> {
    let (a, b) = (
        side.reading.first_half_error?,
        side.reading.second_half_error?,
    );
    let how = if b + 0.25 < a {
        "got closer"
    } else if b > a + 0.25 {
        "drifted further off"
    } else {
        "stayed about as close"
    };
    Some(format!(
        "the guesses {how} ({a:.1} points off in the first half of the period, {b:.1} in the second)"
    ))
}

fn side_by_side(me: &str, partner: &str, mine: Markup, theirs: Markup) -> Markup {
    html! {
        div class="pair" {
            div { h3 { (who("me", me)) } (mine) }
            div { h3 { (who("partner", partner)) } (theirs) }
        }
    }
}

fn feelings(s: &Side) -> Markup {
    html! {
        @if s.top_words.is_empty() {
            p class="muted" { "no feelings named" }
        } @else {
            p { "named most: " (s.top_words.iter().map(|(w, n)| format!("{} ({n})", inert(w))).collect::<Vec<_>>().join(", ")) }
        }
    }
}

fn needs(s: &Side, other: &str) -> Markup {
    let n = &s.needs;
    html! {
        @if n.total() == 0 {
            p class="muted" { "asked for nothing in particular" }
        } @else {
            ul {
                @for (need, count) in n.each() {
                    @if count > 0 { li { (need_short(need)) ": " (times(count)) } }
                }
            }
            @if n.answerable > 0 {
                p { (other) " answered with a reflection within a day " (n.answered) " of " (n.answerable) " times" }
            }
        }
    }
}

fn listening(s: &Side) -> Markup {
    let l = &s.listening;
    html! {
        @if l.reflections == 0 {
            p class="muted" { "no reflections" }
        } @else {
            ul {
                li { (l.reflections) " reflection" @if l.reflections != 1 { "s" } " written" }
                li { (l.first_try) " confirmed at the first try" }
                li { (l.after_corrections) " confirmed after a correction" }
                @if l.open > 0 { li { (l.open) " not confirmed yet" } }
            }
        }
    }
}

/// The page.
pub fn page(r: &Report, me: &str, partner: &str) -> String {
    let (me, partner) = (inert(me), inert(partner));
    let title = match r.period.kind {
        PeriodKind::Year => format!("The year {}", r.label),
        _ => format!("State of the union — {}", r.label),
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "attune — " (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p id="legend" { (who("me", &me)) " and " (who("partner", &partner)) " — " (r.period.first) " to " (r.period.last) }
                @if !r.has_data {
                    p class="empty" id="no-data" {
                        "Nothing was written in " (r.label) ": no check-ins, reflections, exercises or appreciations. "
                        "There is nothing to picture yet; a check-in a day ("
                        code { "attune checkin" } ") is enough to fill the next one."
                    }
                } @else {
                    (body(r, &me, &partner))
                }
                p { small class="muted" { "Computed on this device by attune from what you both shared; nothing here was sent anywhere." } }
            }
        }
    };
    markup.into_string()
}

fn body(r: &Report, me: &str, partner: &str) -> Markup {
    let year = r.period.kind == PeriodKind::Year;
    let labels: Vec<String> = if year {
        r.months.iter().map(|m| m.month.clone()).collect()
    } else {
        r.days.iter().map(|d| d.day.clone()).collect()
    };
    let x_ticks: Vec<(usize, String)> = if year {
        labels
            .iter()
            .enumerate()
            .map(|(i, m)| (i, short_month(m)))
            .collect()
    } else {
        let step = if r.days.len() > 40 { 14 } else { 7 };
        r.days
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0)
            .map(|(i, d)| {
                (
                    i,
                    format!(
                        "{} {}",
                        short_month(&d.day[..7]),
                        d.day[8..].trim_start_matches('0')
                    ),
                )
            })
            .collect()
    };
    let f = |v: Option<u8>| v.map(f64::from);
    let (my_moods, their_moods, my_err, their_err): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = if year {
        (
            r.months.iter().map(|m| m.my_average).collect(),
            r.months.iter().map(|m| m.partner_average).collect(),
            r.months.iter().map(|m| m.my_mean_error).collect(),
            r.months.iter().map(|m| m.partner_mean_error).collect(),
        )
    } else {
        (
            r.days.iter().map(|d| f(d.me)).collect(),
            r.days.iter().map(|d| f(d.partner)).collect(),
            r.days.iter().map(|d| f(d.my_error)).collect(),
            r.days.iter().map(|d| f(d.partner_error)).collect(),
        )
    };
    let per = if year {
        "each month's average"
    } else {
        "each day"
    };
    let any_guess = r.me.reading.days_guessed + r.partner.reading.days_guessed > 0;
    let any_feelings = r.me.quadrants.total() + r.partner.quadrants.total() > 0;
    let quadrant_rows: Vec<(&str, usize, usize)> =
        r.me.quadrants
            .each()
            .iter()
            .zip(r.partner.quadrants.each())
            .map(|((q, a), (_, b))| (q.label(), *a, b))
            .collect();
    html! {
        section id="s-moods" {
            h2 { "Moods" }
            p { "Average mood: " (who("me", me)) " " (one(r.me.average_mood)) ", " (who("partner", partner)) " " (one(r.partner.average_mood))
                " (1 is the heaviest, 10 the lightest). Days checked in: " (r.me.checkin_days) " and " (r.partner.checkin_days) "." }
            (svg::line_chart("moods", &format!("moods, {per}"), &labels, &x_ticks,
                &YAxis { min: 1.0, max: 10.0, ticks: &[1.0, 4.0, 7.0, 10.0], label: "mood" },
                &[Series { class: "me", name: me, colour: ME, values: my_moods },
                  Series { class: "partner", name: partner, colour: PARTNER, values: their_moods }]))
            @if year {
                p { "Every day of the year: " (who("me", me)) " in the upper half of each square, " (who("partner", partner)) " in the lower." }
                (svg::year_pixels(&r.days))
                table id="months" {
                    tr { th { "month" } th { "average mood" } th { "days with a mood" } th { "guess off by" } }
                    @for m in &r.months {
                        tr {
                            td { (short_month(&m.month)) }
                            td { span class="me" { (cell(m.my_average)) } " · " span class="partner" { (cell(m.partner_average)) } }
                            td { span class="me" { (m.my_mood_days) } " · " span class="partner" { (m.partner_mood_days) } }
                            td { span class="me" { (cell(m.my_mean_error)) } " · " span class="partner" { (cell(m.partner_mean_error)) } }
                        }
                    }
                }
            } @else {
                p { "Each day of the month: " (who("me", me)) " in the upper half, " (who("partner", partner)) " in the lower." }
                (svg::calendar(&r.days, me, partner))
            }
            (svg::scale_legend())
        }
        section id="s-feelings" {
            h2 { "Feelings" }
            @if any_feelings {
                p { "The feelings each of you named, by how pleasant they are and how much energy they carry." }
                (svg::paired_bars("quadrants", "feelings by quadrant", &quadrant_rows))
                (side_by_side(me, partner, feelings(&r.me), feelings(&r.partner)))
            } @else {
                p class="muted" { "No feelings were named in this period." }
            }
        }
        section id="s-reading" {
            h2 { "Reading each other" }
            @if any_guess {
                ul {
                    li { (reading_sentence("you", partner, &r.me)) @if let Some(t) = trend_sentence(&r.me) { "; " (t) } "." }
                    li { (reading_sentence(partner, "you", &r.partner)) @if let Some(t) = trend_sentence(&r.partner) { "; " (t) } "." }
                    li { "Feelings guessed right: " (r.me.reading.feelings_hit) " of your " (r.me.reading.feelings_guessed) " guesses were feelings " (partner) " named; "
                         (r.partner.reading.feelings_hit) " of " (partner) "'s " (r.partner.reading.feelings_guessed) " were yours." }
                }
                (svg::line_chart("accuracy", &format!("how far each guess was, {per}"), &labels, &x_ticks,
                    &YAxis { min: 0.0, max: 9.0, ticks: &[0.0, 3.0, 6.0, 9.0], label: "points off" },
                    &[Series { class: "me", name: &format!("{me}'s guesses"), colour: ME, values: my_err },
                      Series { class: "partner", name: &format!("{partner}'s guesses"), colour: PARTNER, values: their_err }]))
                p class="muted" { "Lower is closer. A guess counts on days both check-ins opened." }
            } @else {
                p class="muted" { "No guesses opened in this period: guess the other's mood when you check in." }
            }
        }
        section id="s-needs" {
            h2 { "What each of you asked for" }
            (side_by_side(me, partner, needs(&r.me, partner), needs(&r.partner, me)))
        }
        section id="s-listening" {
            h2 { "Listening" }
            (side_by_side(me, partner, listening(&r.me), listening(&r.partner)))
        }
        section id="s-streaks" {
            h2 { "Streaks" @if r.challenge.is_some() { " and the challenge" } }
            ul {
                li { "Longest run of days in a row: " (who("me", me)) " " (r.me.longest_run) ", " (who("partner", partner)) " " (r.partner.longest_run) "." }
                li { "Streak at the end of the period (one missed day forgiven): " (r.me.streak_at_end) " and " (r.partner.streak_at_end) "." }
                li { "Exercises answered: " (r.me.exercises_answered) " and " (r.partner.exercises_answered) "." }
                @if let Some(c) = &r.challenge {
                    li { "30-day challenge (started " (c.start) "), days " (c.first_day) " to " (c.last_day) " in this period: "
                         "you answered an exercise on " (c.my_days) ", " (partner) " on " (c.partner_days) "." }
                }
            }
        }
        section id="s-union" {
            h2 { "State of the union" }
            @if r.unions.is_empty() {
                p class="muted" { "No state of the union was started in this period. " code { "attune ask state-of-the-union" } " starts one: each answers sealed, and both open together." }
            }
            @for u in &r.unions {
                p { "Started " (u.started) "." }
                @if u.mine.is_some() && u.theirs.is_some() {
                    (side_by_side(me, partner, union_answer(u.mine.as_ref()), union_answer(u.theirs.as_ref())))
                } @else {
                    p class="muted" { (match (u.i_answered, u.they_answered) {
                        (false, false) => "Neither of you has answered yet.".to_string(),
                        (true, false) => format!("Waiting for {partner}'s answer; yours stays sealed until then."),
                        (false, true) => format!("{partner} has answered; yours opens both."),
                        (true, true) => "Both answered; it opens at the next sync.".to_string(),
                    }) }
                }
            }
        }
        section id="s-appreciations" {
            h2 { "Appreciations" }
            @if r.appreciations.is_empty() {
                p class="muted" { "None written in this period." }
            } @else {
                ul {
                    @for a in &r.appreciations {
                        li { (who(if a.by_me { "me" } else { "partner" }, if a.by_me { me } else { partner })) " (" (a.day) "): " (inert(&a.text)) }
                    }
                }
            }
        }
    }
}

fn union_answer(a: Option<&crate::item::UnionAnswer>) -> Markup {
    match a {
        None => html! { p class="muted" { "sealed" } },
        Some(a) => html! {
            dl {
                dt { "Appreciated" } dd { (inert(&a.appreciated)) }
                dt { "Weighed on me" } dd { (inert(&a.grievance)) }
                dt { "One thing to change" } dd { (inert(&a.change)) }
            }
        },
    }
}

/// What a check-in asked for, as a noun ("listening").
pub fn need_short(n: crate::item::Need) -> &'static str {
    use crate::item::Need;
    match n {
        Need::Listen => "listening",
        Need::Support => "support",
        Need::Suggestions => "suggestions",
        Need::Space => "space",
        Need::Distraction => "distraction",
    }
}

/// A quadrant's short label, for the terminal.
pub fn quadrant_short(q: Quadrant) -> &'static str {
    match q {
        Quadrant::PleasantHigh => "pleasant, lively",
        Quadrant::PleasantLow => "pleasant, calm",
        Quadrant::UnpleasantHigh => "unpleasant, tense",
        Quadrant::UnpleasantLow => "unpleasant, low",
    }
}
