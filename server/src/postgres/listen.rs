//! One connection per instance that LISTENs for what other instances commit:
//! envelopes appended to a space (its WebSocket streams here look at once) and
//! pairing mailboxes changed (their long-polling readers here look at once).
//! If the connection drops it is made again, and every stream looks once, for
//! whatever was committed while nobody listened.

use std::sync::Arc;
use std::time::Duration;

use attune_proto::SpaceId;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgUrl, MAILBOX_CHANNEL, SPACES_CHANNEL};

/// What the listener tells the rest of the instance.
pub trait Notified: Send + Sync + 'static {
    /// Envelopes up to `cursor` were committed to `space` (0: it was erased).
    fn space(&self, space: SpaceId, cursor: u64);
    /// Notices may have been missed: every stream should look again.
    fn missed(&self);
}

/// `SPACE_HEX:CURSOR`.
pub fn parse_space_notice(payload: &str) -> Option<(SpaceId, u64)> {
    let (space, cursor) = payload.split_once(':')?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(space, &mut id).ok()?;
    Some((SpaceId(id), cursor.parse().ok()?))
}

/// Listens until `stop` turns true.
pub async fn run(
    url: PgUrl,
    notified: Arc<dyn Notified>,
    mailboxes: broadcast::Sender<u32>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match listen_once(&url, notified.as_ref(), &mailboxes, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the notification connection to PostgreSQL dropped; connecting again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One connection's life: `Ok` when stopped, `Err` when the connection failed
/// or closed.
async fn listen_once(
    url: &PgUrl,
    notified: &dyn Notified,
    mailboxes: &broadcast::Sender<u32>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut config = url.config().clone();
    config.application_name("attune-relay listener");
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!(
            "LISTEN {SPACES_CHANNEL}; LISTEN {MAILBOX_CHANNEL}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    notified.missed();
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some(n) if n.channel() == SPACES_CHANNEL => {
                    if let Some((space, cursor)) = parse_space_notice(n.payload()) {
                        notified.space(space, cursor);
                    }
                }
                Some(n) => {
                    if let Ok(number) = n.payload().parse::<u32>() {
                        let _ = mailboxes.send(number);
                    }
                }
                None => break,
            },
            _ = stop.changed() => {
                driver.abort();
                return Ok(());
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(Err(e)) => Err(e.to_string()),
        _ => Err("the connection closed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_notices_read_back_and_bad_ones_are_ignored() {
        let space = SpaceId([7; 16]);
        let payload = format!("{}:{}", hex::encode(space.0), 42);
        assert_eq!(parse_space_notice(&payload), Some((space, 42)));
        assert_eq!(parse_space_notice("zz:1"), None);
        assert_eq!(parse_space_notice(&hex::encode(space.0)), None);
        assert_eq!(
            parse_space_notice(&format!("{}:x", hex::encode(space.0))),
            None
        );
    }
}
