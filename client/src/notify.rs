//! Desktop notifications (notify-rust, over the session's D-Bus). They carry
//! attune's own words only, never content: a lock screen may show them.

/// Shows a notification; false when none can be shown (no notification
/// service, or `ATTUNE_NOTIFY=off`).
pub fn show(summary: &str, body: &str) -> bool {
    if std::env::var("ATTUNE_NOTIFY").is_ok_and(|v| v == "off") {
        return false;
    }
    notify_rust::Notification::new()
        .summary(summary)
        .body(body)
        .appname("attune")
        .show()
        .is_ok()
}
