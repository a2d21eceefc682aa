//! The report's pictures as inline SVG, written through maud so every text and
//! attribute is escaped: a line chart with dated axes, a month calendar and a
//! year in pixels coloured by mood, and stacked bars.

use maud::{html, Markup};

use super::numbers::{short_month, weekday, Day};

/// Each partner's colour, everywhere in the report.
pub const ME: &str = "#1f7a8c";
pub const PARTNER: &str = "#a23b72";
/// No check-in that day.
pub const EMPTY: &str = "#ecebe6";

/// Moods 1..=10, from heavy (red) through neutral (yellow) to light (green).
pub const MOOD_SCALE: [&str; 10] = [
    "#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#d9ef8b", "#a6d96a", "#66bd63",
    "#1a9850", "#006837",
];

pub fn mood_colour(mood: Option<u8>) -> &'static str {
    match mood {
        Some(m @ 1..=10) => MOOD_SCALE[usize::from(m) - 1],
        _ => EMPTY,
    }
}

/// One line of a chart.
#[derive(Debug)]
pub struct Series<'a> {
    /// `me` or `partner`: the CSS class of its points, for tests and print styles.
    pub class: &'a str,
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<Option<f64>>,
}

/// The y axis: its range and the ticks to label.
#[derive(Debug)]
pub struct YAxis<'a> {
    pub min: f64,
    pub max: f64,
    pub ticks: &'a [f64],
    pub label: &'a str,
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 40.0;

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// A line chart over `labels` (one per x position), with the x ticks `x_ticks`
/// (position, text), a legend on top, and gaps where a value is missing.
pub fn line_chart(
    id: &str,
    title: &str,
    labels: &[String],
    x_ticks: &[(usize, String)],
    y: &YAxis<'_>,
    series: &[Series<'_>],
) -> Markup {
    let n = labels.len().max(2) as f64;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1.0);
    let span = (y.max - y.min).max(1.0);
    let yv = |v: f64| H - BOTTOM - (H - TOP - BOTTOM) * ((v - y.min) / span);
    html! {
        svg id=(id) class="chart" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H)} width=(W) height=(H) role="img" aria-label=(title) {
            title { (title) }
            rect x="0" y="0" width=(W) height=(H) fill="#fffdf8" {}
            // legend
            @for (k, s) in series.iter().enumerate() {
                @let lx = LEFT + 170.0 * k as f64;
                g class="legend" {
                    line x1=(lx) y1="14" x2=(lx + 22.0) y2="14" stroke=(s.colour) stroke-width="3" {}
                    circle cx=(lx + 11.0) cy="14" r="3.5" fill=(s.colour) {}
                    text x=(lx + 28.0) y="18" font-size="12" fill="#333" { (s.name) }
                }
            }
            // y axis
            @for t in y.ticks {
                line x1=(LEFT) y1=(num(yv(*t))) x2=(W - RIGHT) y2=(num(yv(*t))) stroke="#e3e0d8" {}
                text x=(LEFT - 6.0) y=(num(yv(*t) + 4.0)) font-size="11" text-anchor="end" fill="#666" { (t) }
            }
            text x="12" y=(num((TOP + H - BOTTOM) / 2.0)) font-size="11" fill="#666" transform={"rotate(-90 12 " (num((TOP + H - BOTTOM) / 2.0)) ")"} text-anchor="middle" { (y.label) }
            // x axis
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) stroke="#999" {}
            @for (i, text) in x_ticks {
                line x1=(num(x(*i))) y1=(H - BOTTOM) x2=(num(x(*i))) y2=(H - BOTTOM + 5.0) stroke="#999" {}
                text class="x-tick" x=(num(x(*i))) y=(H - BOTTOM + 18.0) font-size="11" text-anchor="middle" fill="#555" { (text) }
            }
            @for s in series {
                // One line per run of days with data: a gap is not drawn over.
                @for run in runs(&s.values) {
                    @if run.len() > 1 {
                        polyline class={"line-" (s.class)} fill="none" stroke=(s.colour) stroke-width="2" points=(run.iter().map(|(i, v)| format!("{},{}", num(x(*i)), num(yv(*v)))).collect::<Vec<_>>().join(" ")) {}
                    }
                }
                @for (i, v) in s.values.iter().enumerate() {
                    @if let Some(v) = v {
                        circle class={"pt-" (s.class)} data-day=(labels.get(i).map_or("", String::as_str)) data-value=(v) cx=(num(x(i))) cy=(num(yv(*v))) r="3.5" fill=(s.colour) {}
                    }
                }
            }
        }
    }
}

fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = vec![vec![]];
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => out.last_mut().map_or((), |r| r.push((i, *v))),
            None => out.push(vec![]),
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

const CELL: f64 = 46.0;

/// A month as a calendar (weeks from Monday), each day split: the top half in
/// my mood's colour, the bottom half in the partner's.
pub fn calendar(days: &[Day], me: &str, partner: &str) -> Markup {
    let offset = days.first().map_or(0, |d| weekday(&d.day));
    let weeks = (offset + days.len()).div_ceil(7);
    let width = 7.0 * CELL + 8.0;
    let height = 22.0 + weeks as f64 * CELL + 4.0;
    html! {
        svg id="calendar" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" aria-label="each day's moods" {
            title { "Each day: " (me) " above, " (partner) " below" }
            @for (i, name) in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].iter().enumerate() {
                text x=(4.0 + CELL * i as f64 + CELL / 2.0) y="14" font-size="11" text-anchor="middle" fill="#666" { (name) }
            }
            @for (k, d) in days.iter().enumerate() {
                @let slot = offset + k;
                @let cx = 4.0 + CELL * (slot % 7) as f64;
                @let cy = 22.0 + CELL * (slot / 7) as f64;
                g class="day" data-day=(d.day) {
                    rect class="mood-me" x=(cx + 1.0) y=(cy + 1.0) width=(CELL - 2.0) height=(CELL / 2.0 - 1.0) fill=(mood_colour(d.me)) {}
                    rect class="mood-partner" x=(cx + 1.0) y=(cy + CELL / 2.0) width=(CELL - 2.0) height=(CELL / 2.0 - 1.0) fill=(mood_colour(d.partner)) {}
                    text x=(cx + 5.0) y=(cy + 13.0) font-size="10" fill="#222" { (d.day.get(8..).unwrap_or("").trim_start_matches('0')) }
                }
            }
        }
    }
}

/// A year in pixels: one row per month, one column per day of the month, each
/// day split like the calendar's.
pub fn year_pixels(days: &[Day]) -> Markup {
    const PX: f64 = 18.0;
    let left = 36.0;
    let width = left + 31.0 * PX + 4.0;
    let height = 18.0 + 12.0 * PX + 4.0;
    html! {
        svg id="pixels" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" aria-label="the year in pixels" {
            title { "The year in pixels" }
            @for d in (1..=31).step_by(5) {
                text x=(left + PX * (d - 1) as f64 + PX / 2.0) y="12" font-size="10" text-anchor="middle" fill="#666" { (d) }
            }
            @for d in days {
                @let month: usize = d.day.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
                @let dom: usize = d.day.get(8..10).and_then(|m| m.parse().ok()).unwrap_or(1);
                @let px = left + PX * (dom - 1) as f64;
                @let py = 18.0 + PX * (month - 1) as f64;
                @if dom == 1 {
                    text x="2" y=(py + 13.0) font-size="11" fill="#555" { (short_month(&d.day[..7])) }
                }
                g class="day" data-day=(d.day) {
                    rect class="mood-me" x=(px + 1.0) y=(py + 1.0) width=(PX - 2.0) height=(PX / 2.0 - 1.0) fill=(mood_colour(d.me)) {}
                    rect class="mood-partner" x=(px + 1.0) y=(py + PX / 2.0) width=(PX - 2.0) height=(PX / 2.0 - 1.0) fill=(mood_colour(d.partner)) {}
                }
            }
        }
    }
}

/// The mood colour scale, as a legend.
pub fn scale_legend() -> Markup {
    html! {
        svg class="scale" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 330 30" role="img" aria-label="mood colours from 1 to 10" {
            @for (i, c) in MOOD_SCALE.iter().enumerate() {
                rect x=(30.0 * i as f64) y="0" width="28" height="14" fill=(c) {}
                text x=(30.0 * i as f64 + 14.0) y="27" font-size="10" text-anchor="middle" fill="#555" { (i + 1) }
            }
            rect x="302" y="0" width="28" height="14" fill=(EMPTY) {}
            text x="316" y="27" font-size="10" text-anchor="middle" fill="#555" { "none" }
        }
    }
}

/// Horizontal bars: (label, my count, partner's count) per row, scaled to the
/// largest count.
pub fn paired_bars(id: &str, title: &str, rows: &[(&str, usize, usize)]) -> Markup {
    let max = rows.iter().map(|r| r.1.max(r.2)).max().unwrap_or(0).max(1) as f64;
    let label_w = 170.0;
    let bar_w = 440.0;
    let row_h = 30.0;
    let height = row_h * rows.len() as f64 + 6.0;
    html! {
        svg id=(id) class="chart" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (label_w + bar_w + 50.0) " " (height)} width=(label_w + bar_w + 50.0) height=(height) role="img" aria-label=(title) {
            title { (title) }
            @for (i, (label, mine, theirs)) in rows.iter().enumerate() {
                @let y = 4.0 + row_h * i as f64;
                text x="0" y=(y + 17.0) font-size="12" fill="#333" { (label) }
                rect class="bar-me" x=(label_w) y=(y) width=(num(bar_w * *mine as f64 / max)) height="12" fill=(ME) {}
                text x=(num(label_w + bar_w * *mine as f64 / max + 4.0)) y=(y + 10.0) font-size="10" fill="#333" { (mine) }
                rect class="bar-partner" x=(label_w) y=(y + 13.0) width=(num(bar_w * *theirs as f64 / max)) height="12" fill=(PARTNER) {}
                text x=(num(label_w + bar_w * *theirs as f64 / max + 4.0)) y=(y + 23.0) font-size="10" fill="#333" { (theirs) }
            }
        }
    }
}
