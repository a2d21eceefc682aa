//! The tone check against a labelled set of drafts written for this test
//! (`tests/data/coach_drafts.tsv`: calm, heated, sad, sarcastic, mixed). The
//! coach should offer a pause for heated and sarcastic drafts ("heated" below)
//! and never for sad ones: a partner sharing pain must not be told to calm
//! down. The levels held here are the ones BENCHMARKS.md reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_core::coach::{check, Verdict};

struct Counts {
    flagged: usize,
    total: usize,
}

fn drafts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (label, draft) = l.split_once('\t').expect("LABEL<TAB>TEXT");
            (label.to_string(), draft.to_string())
        })
        .collect()
}

/// Precision and recall on heated+sarcastic, and how many sad drafts were
/// flagged, printed with every disagreement.
fn score(name: &str, drafts: &[(String, String)]) -> (f64, f64, usize, usize) {
    let mut by_label: std::collections::BTreeMap<&str, Counts> = Default::default();
    let mut misses = Vec::new();
    for (label, draft) in drafts {
        let heated = check(draft).verdict == Verdict::Heated;
        let c = by_label.entry(label.as_str()).or_insert(Counts {
            flagged: 0,
            total: 0,
        });
        c.total += 1;
        c.flagged += usize::from(heated);
        let wanted = matches!(label.as_str(), "heated" | "sarcastic");
        if label != "mixed" && heated != wanted {
            misses.push(format!(
                "{label:>9} {}: {draft}",
                if heated { "flagged" } else { "missed" }
            ));
        }
    }
    let get = |l: &str| by_label.get(l).map_or((0, 0), |c| (c.flagged, c.total));
    let (hf, ht) = get("heated");
    let (sf, st) = get("sarcastic");
    let (cf, ct) = get("calm");
    let (df, dt) = get("sad");
    let (mf, mt) = get("mixed");
    let true_pos = hf + sf;
    let false_pos = cf + df;
    let precision = true_pos as f64 / (true_pos + false_pos).max(1) as f64;
    let recall = true_pos as f64 / (ht + st).max(1) as f64;
    println!(
        "{name}: {} drafts: precision {precision:.3}, recall {recall:.3} on heated+sarcastic \
         (heated {hf}/{ht}, sarcastic {sf}/{st} flagged); false alarms: calm {cf}/{ct}, \
         sad {df}/{dt}; mixed flagged {mf}/{mt}",
        drafts.len()
    );
    for m in &misses {
        println!("  {m}");
    }
    (precision, recall, df, dt)
}

/// The set the rules were written against: they should do well here.
#[test]
fn the_tone_check_on_the_drafts_its_rules_were_written_against() {
    let drafts = drafts(include_str!("data/coach_drafts.tsv"));
    assert!(drafts.len() >= 200, "{} drafts", drafts.len());
    let (precision, recall, sad_flagged, sad) = score("development set", &drafts);
    assert!(precision >= 0.95, "precision {precision:.3}");
    assert!(recall >= 0.90, "recall {recall:.3}");
    assert!(
        sad_flagged * 20 <= sad,
        "sad drafts flagged: {sad_flagged} of {sad}"
    );
}

/// A set written separately, by someone who never saw the rules, and never
/// used to change them: the honest figures (BENCHMARKS.md).
#[test]
fn the_tone_check_on_drafts_it_never_saw() {
    let drafts = drafts(include_str!("data/coach_holdout.tsv"));
    assert!(drafts.len() >= 150, "{} drafts", drafts.len());
    let (precision, recall, sad_flagged, sad) = score("held-out set", &drafts);
    assert!(precision >= HOLDOUT_PRECISION, "precision {precision:.3}");
    assert!(recall >= HOLDOUT_RECALL, "recall {recall:.3}");
    assert!(
        sad_flagged <= HOLDOUT_SAD_FLAGGED,
        "sad drafts flagged: {sad_flagged} of {sad}"
    );
}

/// Measured 2026-12-04 on the first run against this set: 0.925, 0.673, 1 of 35.
const HOLDOUT_PRECISION: f64 = 0.92;
const HOLDOUT_RECALL: f64 = 0.67;
const HOLDOUT_SAD_FLAGGED: usize = 1;
