//! Integrity problems in words: what a verdict of the chain verifier, a
//! disagreement about heads, or a roster claim of the partner means, and whose
//! doing it is.

use attune_crypto::Class;
use attune_proto::{DeviceId, EnvelopeHeader, Roster, SignedRosterEvent};

use crate::entry::Problem;
use crate::item::RosterHead;

/// How much later than an acknowledgement (or a roster change) the partner must
/// have synced before its absence on their side counts as withheld: generous,
/// because the two devices' clocks differ.
pub(crate) const WITHHELD_MARGIN_MS: i64 = 10 * 60 * 1000;

/// What `heads_problem` needs to know about this device and the item's author.
pub(crate) struct HeadsContext<'a> {
    pub me: DeviceId,
    pub own_max: u64,
    /// Whether this device wrote an envelope with that number.
    pub own_has: &'a dyn Fn(u64) -> bool,
    pub author_name: &'a str,
    pub cursor: u64,
}

/// Describes a disagreement between an item's heads and this device's chains.
/// A claim about this device's own chain that cannot be true (an envelope it never
/// wrote, or a different one than it wrote, which the relay cannot forge) is the
/// item's author's doing, and the warning says so.
pub(crate) fn heads_problem(p: attune_crypto::HeadsProblem, c: &HeadsContext<'_>) -> Problem {
    use attune_crypto::HeadsProblem;
    let who = c.author_name;
    let (kind, detail) = match p {
        HeadsProblem::Withheld { device, seen, .. } if device == c.me && seen > c.own_max => (
            "false_heads",
            format!(
                "{who} item says it had received your envelope {seen}, but this device has written only {}: that device signed a false account of what it received",
                c.own_max
            ),
        ),
        HeadsProblem::Fork { device, seq } if device == c.me && (c.own_has)(seq) => (
            "false_heads",
            format!(
                "{who} item says it received a different envelope {seq} of yours than the one this device wrote, which the relay cannot forge: that device signed a false account of what it received"
            ),
        ),
        HeadsProblem::Withheld { device, have, seen } => (
            "withheld",
            format!(
                "an item says its author had seen envelope {seen} of device {}, but the relay has served only up to {have}: the relay is withholding envelopes",
                short(&device)
            ),
        ),
        HeadsProblem::Fork { device, seq } => (
            "fork",
            format!(
                "an item says its author saw a different envelope {seq} of device {} than this device did: the relay showed you different histories",
                short(&device)
            ),
        ),
    };
    Problem {
        kind: kind.into(),
        detail,
        cursor: Some(c.cursor),
    }
}

/// Compares the rosters the partner's items say they had with this device's:
/// a longer or different one means the relay shows the two of you different
/// memberships; a shorter one, long after a change, that it hid the change from
/// the partner.
pub(crate) fn roster_disagreements(
    claims: &[(RosterHead, i64)],
    events: &[crate::db::StoredEvent],
    partner: &str,
) -> Vec<Problem> {
    let mine = events.len() as u64;
    let mut out: Vec<Problem> = Vec::new();
    let mut push = |kind: &str, detail: String| {
        if !out.iter().any(|p| p.kind == kind) {
            out.push(Problem {
                kind: kind.into(),
                detail,
                cursor: None,
            });
        }
    };
    for (r, seen_at) in claims {
        if r.len > mine {
            push("roster_withheld", format!(
                "{partner}'s device had seen {} membership events, this device only {mine}: the relay is not showing this device a device change; sync again, and if this stays, the relay is hiding it",
                r.len
            ));
            continue;
        }
        let at = |i: u64| {
            events
                .get(i as usize)
                .and_then(|e| SignedRosterEvent::decode(&e.event).ok())
        };
        let ours = r.len.checked_sub(1).and_then(at).map(|e| e.hash().to_hex());
        if ours.as_deref() != Some(r.hash.as_str()) {
            push("roster_fork", format!(
                "{partner}'s device saw a different membership history than this device: the relay is showing the two of you different device lists"
            ));
        } else if let Some(missed) = at(r.len) {
            // The event's time: the signer's clock (version 1), or when this
            // device stored it (version 2 carries no time the relay could read).
            let at = missed
                .event
                .legacy_at
                .or_else(|| events.get(r.len as usize).and_then(|e| e.stored_at));
            if at.is_some_and(|at| at.saturating_add(WITHHELD_MARGIN_MS) < *seen_at) {
                push("roster_withheld_from_partner", format!(
                    "{partner}'s devices had not seen membership event {} (a device change) although they synced well after it: the relay may be hiding it from {partner}",
                    r.len + 1
                ));
            }
        }
    }
    out
}

pub fn short(d: &DeviceId) -> String {
    d.to_hex()[..8].to_string()
}

pub(crate) fn describe(class: Class, h: &EnvelopeHeader, cursor: u64, roster: &Roster) -> Problem {
    let who = short(&h.author);
    let revoked = roster.device(&h.author).is_some();
    let (kind, detail) = match class {
        Class::Ok => ("ok", String::new()),
        Class::Forged if revoked => ("forged", format!("envelope {} of device {who} was written after that device was revoked: it is not accepted", h.seq)),
        Class::Forged => ("forged", format!("envelope at cursor {cursor} claims device {who}, which is not a device of this space: forged")),
        Class::Altered => ("altered", format!("envelope {} of device {who} does not verify: it was altered after it was written", h.seq)),
        Class::ForeignSpace => ("foreign", format!("envelope at cursor {cursor} belongs to another space")),
        Class::Replayed => ("replayed", format!("envelope {} of device {who} was served again (a replay)", h.seq)),
        Class::Gap { expected, found } => ("gap", format!("device {who}: envelope {found} arrived but {expected}..{} are missing: the relay dropped or is holding back envelopes", found - 1)),
        Class::Reordered => ("reordered", format!("envelope {} of device {who} was served out of order", h.seq)),
        Class::Fork { seq } => ("fork", format!("device {who} has two different envelopes numbered {seq}: the relay is showing a forked history")),
    };
    Problem {
        kind: kind.into(),
        detail,
        cursor: Some(cursor),
    }
}
