//! Real devices, spaces and envelopes: Ed25519 device keys, a signed roster
//! (creation, then `Link` events adding more devices of the same member), and
//! envelopes sealed with XChaCha20-Poly1305 and signed by their author, chained by
//! sequence number and hash exactly as a client does.

use std::sync::Arc;

use anyhow::{ensure, Context};
use attune_core::relay::RelayClient;
use attune_crypto::{seal_envelope, DeviceIdentity, SymmetricKey};
use attune_proto::{
    EntryId, EnvelopeHeader, Hash32, KeyId, MemberId, RosterChange, RosterEvent, SignedRosterEvent,
    SpaceId,
};

pub fn random16() -> [u8; 16] {
    attune_crypto::secret::random_array()
}

/// One device's outgoing chain of envelopes in one space.
#[derive(Debug, Clone)]
pub struct Chain {
    pub identity: DeviceIdentity,
    pub space: SpaceId,
    pub epoch: Arc<SymmetricKey>,
    pub seq: u64,
    pub prev: Hash32,
}

impl Chain {
    /// Seals the next envelope with `content`, advances the chain, and returns the
    /// encoded envelope.
    pub fn seal_next(&mut self, content: &[u8]) -> anyhow::Result<Vec<u8>> {
        let header = EnvelopeHeader {
            space: self.space,
            author: self.identity.id(),
            seq: self.seq + 1,
            prev: self.prev,
            legacy_key: None,
            entry: EntryId(random16()),
        };
        let env = seal_envelope(
            &self.identity,
            header,
            KeyId::Epoch(0),
            &self.epoch,
            content,
        )
        .map_err(|e| anyhow::anyhow!("sealing failed: {e}"))?;
        self.seq += 1;
        self.prev = env.hash();
        Ok(env.encode())
    }
}

/// A device: its key, its HTTP client (its own connection pool, as a separate
/// phone or laptop would have) and its chain in its space.
#[derive(Debug, Clone)]
pub struct Device {
    pub client: RelayClient,
    pub chain: Chain,
}

impl Device {
    pub fn space(&self) -> SpaceId {
        self.chain.space
    }
}

/// Creates a space on the relay with `devices` devices of one member: the first
/// creates it, the others are added by `Link` events signed by the first.
pub async fn create_space(url: &str, devices: usize) -> anyhow::Result<Vec<Device>> {
    create_space_across(&[url.to_string()], devices).await
}

/// [`create_space`] where device `i` talks to `urls[i % urls.len()]`: relay
/// instances sharing one database. The space is set up through the first.
pub async fn create_space_across(urls: &[String], devices: usize) -> anyhow::Result<Vec<Device>> {
    ensure!(devices >= 1, "a space needs at least one device");
    ensure!(!urls.is_empty(), "no relay to talk to");
    let url = urls[0].as_str();
    let space = SpaceId(random16());
    let member = MemberId(random16());
    let epoch = Arc::new(SymmetricKey::generate());
    let ids: Vec<DeviceIdentity> = (0..devices).map(|_| DeviceIdentity::generate()).collect();
    let creator = &ids[0];
    let mut events: Vec<SignedRosterEvent> = vec![creator.sign_roster_event(RosterEvent {
        space,
        seq: 1,
        prev: Hash32::ZERO,
        signer: creator.id(),
        legacy_at: None,
        change: RosterChange::Create {
            member,
            device: creator.public(),
        },
    })];
    let first = RelayClient::new(url, creator.clone());
    first
        .create_space(events[0].encode())
        .await
        .context("creating a space")?;
    let mut links = Vec::new();
    for id in &ids[1..] {
        let last = events.last().context("the roster has its creation event")?;
        let ev = creator.sign_roster_event(RosterEvent {
            space,
            seq: last.event.seq + 1,
            prev: last.hash(),
            signer: creator.id(),
            legacy_at: None,
            change: RosterChange::Link {
                member,
                device: id.public(),
            },
        });
        links.push(ev.encode());
        events.push(ev);
    }
    // The relay takes at most 64 roster events per request.
    for chunk in links.chunks(64) {
        first
            .append_roster(space, chunk.to_vec())
            .await
            .context("linking devices into the space")?;
    }
    Ok(ids
        .into_iter()
        .enumerate()
        .map(|(i, identity)| Device {
            client: if i == 0 {
                first.clone()
            } else {
                RelayClient::new(&urls[i % urls.len()], identity.clone())
            },
            chain: Chain {
                identity,
                space,
                epoch: epoch.clone(),
                seq: 0,
                prev: Hash32::ZERO,
            },
        })
        .collect())
}

/// `total` devices in spaces of `per_space` devices each (the last space may have
/// fewer), created `concurrency` spaces at a time.
pub async fn create_devices(
    url: &str,
    total: usize,
    per_space: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Device>> {
    create_devices_across(&[url.to_string()], total, per_space, concurrency).await
}

/// [`create_devices`] spread over relay instances sharing one database, as
/// [`create_space_across`] does.
pub async fn create_devices_across(
    urls: &[String],
    total: usize,
    per_space: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Device>> {
    let per_space = per_space.max(1);
    let sizes: Vec<usize> = (0..total.div_ceil(per_space))
        .map(|i| per_space.min(total - i * per_space))
        .collect();
    let mut out = Vec::with_capacity(total);
    for group in sizes.chunks(concurrency.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for (i, &n) in group.iter().enumerate() {
            let urls = urls.to_vec();
            set.spawn(async move { (i, create_space_across(&urls, n).await) });
        }
        let mut done: Vec<(usize, Vec<Device>)> = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, devices) = r.context("a setup task panicked")?;
            done.push((i, devices?));
        }
        done.sort_by_key(|(i, _)| *i);
        out.extend(done.into_iter().flat_map(|(_, d)| d));
    }
    Ok(out)
}

/// Seals `count` envelopes ahead on each chain, all chains in parallel on the
/// blocking pool, so the timed loop spends no client CPU on sealing.
pub async fn preseal(
    chains: Vec<Chain>,
    count: usize,
    content: Arc<Vec<u8>>,
) -> anyhow::Result<Vec<(Chain, Vec<Vec<u8>>)>> {
    let mut handles = Vec::with_capacity(chains.len());
    for mut chain in chains {
        let content = content.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let pool = (0..count)
                .map(|_| chain.seal_next(&content))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok::<_, anyhow::Error>((chain, pool))
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("a sealing task panicked")??);
    }
    Ok(out)
}
