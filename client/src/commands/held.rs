//! `show`, `edit` and `delete` of an item still held on this device for a
//! cool-off (`journal --send-after`): it keeps the id it will be sent under.

use serde_json::json;

use attune_core::held::HeldItem;
use attune_core::item::Body;
use attune_core::profile::{ClientError, Profile};

use crate::common::json_text;
use crate::render::when;
use crate::style::Style;

fn text_of(h: &HeldItem) -> &str {
    match &h.body {
        Body::Journal { text } => text,
        _ => "",
    }
}

/// `attune show ID` of a held item.
pub fn show(h: &HeldItem, json_out: bool) -> Result<i32, ClientError> {
    if json_out {
        let v = json!({
            "id": h.id,
            "author": "me",
            "kind": h.body.kind(),
            "private": h.private,
            "held": true,
            "send_at": h.send_at,
            "text": text_of(h),
        });
        outln!("{}", json_text(&v));
        return Ok(0);
    }
    let s = Style::stdout();
    let short = &h.id[..8];
    let mut flags = String::new();
    if h.private {
        flags.push_str(" (private)");
    }
    flags.push_str(&format!(" (held here until {})", when(h.send_at)));
    crate::pager::print(&format!(
        "{}  {} {}{}  {}\n{}",
        s.dim(&when(h.send_at)),
        s.me("you"),
        h.body.kind(),
        s.dim(&flags),
        s.text(text_of(h)),
        s.dim(&format!(
            "id {}  not sent yet: `attune edit {short}` changes it, `attune withdraw {short}` cancels it",
            h.id
        ))
    ));
    Ok(0)
}

/// `attune edit ID` of a held item: its new text is held in its place, until
/// the same time.
pub fn edit(p: &mut Profile, h: HeldItem, message: Option<String>) -> Result<i32, ClientError> {
    let Some(text) = super::edited_text(&h.body, message)? else {
        return Ok(0);
    };
    p.replace_held(&h.id, &Body::Journal { text })?;
    outln!(
        "edited {}; still held on this device until {}",
        h.id,
        when(h.send_at)
    );
    Ok(0)
}

/// `attune delete ID` of a held item: it is withdrawn, never sent.
pub fn delete(p: &Profile, h: &HeldItem) -> Result<i32, ClientError> {
    if !p.withdraw_held(&h.id)? {
        return Err(ClientError::Input(format!(
            "{} is no longer held: it was sent meanwhile; run `attune delete {}` again to delete it",
            h.id,
            &h.id[..8]
        )));
    }
    outln!(
        "deleted {}: it was held on this device and never sent",
        h.id
    );
    Ok(0)
}
