//! The monthly state-of-the-union report: one self-contained HTML page with SVG
//! charts (moods of both partners, guess accuracy), appreciations and the balance.

use std::fmt::Write as _;

use crate::insights::{balance, daily_moods, guess_accuracy};
use crate::profile::View;

/// HTML-escapes text; control and bidi characters are shown escaped (see
/// `inert`), so the page carries none of them raw (`cat report.html` included).
fn esc(s: &str) -> String {
    crate::inert::lines(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const PAD: f64 = 32.0;

/// An SVG line chart of 0..=max values per day; one circle per day with data.
fn chart(
    id: &str,
    title: &str,
    days: &[String],
    series: &[(&str, &str, Vec<Option<f64>>)],
    max: f64,
) -> String {
    let n = days.len().max(2) as f64;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v / max);
    let mut svg = format!(
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fffdf8\"/>"
    );
    for tick in [0.0, max / 2.0, max] {
        let _ = write!(
            svg,
            "<line x1=\"{PAD}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{2:.1}\" font-size=\"10\" fill=\"#777\">{tick}</text>",
            y(tick),
            W - PAD,
            y(tick) + 3.0
        );
    }
    for (class, color, values) in series {
        // One line per run of consecutive days with data: a gap is not drawn over.
        for run in values
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .split(|(_, v)| v.is_none())
        {
            let points: Vec<String> = run
                .iter()
                .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(*i), y(v))))
                .collect();
            if points.len() > 1 {
                let _ = write!(
                    svg,
                    "<polyline class=\"line-{class}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                    points.join(" ")
                );
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    "<circle class=\"pt-{class}\" data-day=\"{}\" data-value=\"{v}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"/>",
                    days[i],
                    x(i),
                    y(*v)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The report for `month` (YYYY-MM).
pub fn render(view: &View, me: &str, partner: &str, month: &str) -> String {
    let moods = daily_moods(view);
    let days: Vec<String> = month_days(month);
    let mine: Vec<Option<f64>> = days
        .iter()
        .map(|d| moods.get(d).and_then(|m| m.0).map(f64::from))
        .collect();
    let theirs: Vec<Option<f64>> = days
        .iter()
        .map(|d| moods.get(d).and_then(|m| m.1).map(f64::from))
        .collect();
    let acc: Vec<_> = guess_accuracy(&view.practice)
        .into_iter()
        .filter(|a| a.day.starts_with(month))
        .collect();
    let my_err: Vec<Option<f64>> = days
        .iter()
        .map(|d| {
            acc.iter()
                .find(|a| &a.day == d)
                .and_then(|a| a.my_mood_error)
                .map(f64::from)
        })
        .collect();
    let their_err: Vec<Option<f64>> = days
        .iter()
        .map(|d| {
            acc.iter()
                .find(|a| &a.day == d)
                .and_then(|a| a.their_mood_error)
                .map(f64::from)
        })
        .collect();
    let b = balance(view);
    let appreciations: Vec<_> = view
        .practice
        .appreciations
        .iter()
        .filter(|(_, at, _)| crate::practice::day_of(*at).starts_with(month))
        .collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>attune — {month}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:780px;margin:2em auto;color:#333;background:#fff}}\
h1{{font-weight:600}}.me{{color:#1f7a8c}}.partner{{color:#a23b72}}li{{margin:.3em 0}}</style></head><body>"
    );
    let _ = write!(
        html,
        "<h1>State of the union — {month}</h1><p><span class=\"me\">{}</span> and <span class=\"partner\">{}</span>: moods, how well you read each other, and what you appreciated.</p>",
        esc(me),
        esc(partner)
    );
    let _ = write!(
        html,
        "<h2>Moods</h2>{}",
        chart(
            "moods",
            "moods per day",
            &days,
            &[("me", "#1f7a8c", mine), ("partner", "#a23b72", theirs)],
            10.0
        )
    );
    let _ = write!(
        html,
        "<h2>Reading each other</h2><p>How far each guess of the other's mood was (lower is closer).</p>{}",
        chart("accuracy", "guess error per day", &days, &[("me", "#1f7a8c", my_err), ("partner", "#a23b72", their_err)], 9.0)
    );
    let _ = write!(
        html,
        "<h2>Listening</h2><ul><li>reflections: {} by {}, {} by {}</li><li>asked for listening or support: {} times {}, {} times {}</li></ul>",
        b.reflections_by_me, esc(me), b.reflections_by_partner, esc(partner),
        b.needs_support_me, esc(me), b.needs_support_partner, esc(partner)
    );
    html.push_str("<h2>Appreciations</h2><ul id=\"appreciations\">");
    for (mine, _, text) in appreciations {
        let _ = write!(
            html,
            "<li><span class=\"{}\">{}</span>: {}</li>",
            if *mine { "me" } else { "partner" },
            esc(if *mine { me } else { partner }),
            esc(text)
        );
    }
    html.push_str("</ul><p><small>Computed on this device by attune; nothing here was sent anywhere.</small></p></body></html>\n");
    html
}

/// Every day of a month, YYYY-MM-DD.
pub fn month_days(month: &str) -> Vec<String> {
    let Ok(first) = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d") else {
        return vec![];
    };
    let mut out = vec![];
    let mut d = first;
    while d.format("%Y-%m").to_string() == month {
        out.push(d.format("%Y-%m-%d").to_string());
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}
