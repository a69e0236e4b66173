//! [`SyncSocket`]: a replicated dictionary over the mesh, wire-compatible
//! with py2p's and js2p's `SyncSocket`.
//!
//! Every node of a sync network holds the same key → value dictionary:
//! writes flood through the mesh, a newcomer catches up from each peer on
//! joining, and (with leasing, the default) a key you set stays yours for
//! an hour. The protocol logic is the pure layer
//! [`SyncState`]; this module is the thin
//! tokio handle over a node running it. The node is a full mesh node too:
//! [`SyncSocket::mesh`] reaches its broadcasts, whispers and events.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! use std::time::Duration;
//! use rs2p::sync::SyncSocket;
//!
//! let a = SyncSocket::bind("127.0.0.1:0").await?;
//! let b = SyncSocket::bind("127.0.0.1:0").await?;
//! b.mesh().connect("127.0.0.1", a.mesh().addr().port(), None).await?;
//!
//! a.set("greeting", "hello").await?;
//! let seen = b.wait_for("greeting", |v| v.is_some(), Duration::from_secs(5)).await?;
//! assert_eq!(seen.as_deref().and_then(|v| v.as_str()), Some("hello"));
//!
//! // Leasing: the key is a's for an hour, so b may not overwrite it — but
//! // for the references' tie rule: a write stamped in the same second by a
//! // node with a smaller id wins.
//! let refused = b.set("greeting", "bye").await.is_err();
//! assert!(refused || b.mesh().id() < a.mesh().id());
//! # a.close().await; b.close().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::net::published::{Published, Publisher};
use crate::net::{Error, MeshBuilder, MeshSocket};
use crate::protocol::mesh::LayerCtx;
use crate::protocol::sync::{
    Entry, SyncConfig, SyncEvent, SyncKey, SyncState, SyncStats, SyncView,
};
use crate::protocol::{IdWire, Packet, PeerId, Protocol};

/// The subnet name of sync networks unless told otherwise (the network is
/// then `sync1` with leasing, `sync0` without), as in the references.
pub const DEFAULT_SUBNET: &str = "sync";

/// Events kept for slow subscribers before they lag.
const EVENT_CAPACITY: usize = 4096;

/// Runs the pure [`SyncState`] in the node's actor and publishes what
/// changed to subscribers.
type SyncDriver = Published<SyncState, SyncPublisher>;

/// Sends the state's events to the subscribers.
struct SyncPublisher {
    events: broadcast::Sender<SyncEvent>,
}

impl Publisher<SyncState> for SyncPublisher {
    fn publish(&mut self, state: &mut SyncState) {
        for event in state.take_events() {
            let _ = self.events.send(event);
        }
    }
}

/// Configures and starts a [`SyncSocket`].
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rs2p::Error> {
/// let node = rs2p::sync::SyncSocket::builder()
///     .subnet("inventory")
///     .leasing(false)
///     .max_keys(10_000)
///     .bind("127.0.0.1:0")
///     .await?;
/// assert_eq!(node.mesh().protocol().subnet(), "inventory0");
/// # node.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SyncBuilder {
    mesh: MeshBuilder,
    subnet: String,
    encryption: String,
    config: SyncConfig,
    id_wire: IdWire,
}

impl Default for SyncBuilder {
    fn default() -> Self {
        SyncBuilder {
            mesh: MeshBuilder::default(),
            subnet: DEFAULT_SUBNET.to_owned(),
            encryption: "Plaintext".to_owned(),
            config: SyncConfig::default(),
            id_wire: IdWire::Bin,
        }
    }
}

impl SyncBuilder {
    /// The network's name, without the leasing suffix. Default `sync`.
    pub fn subnet(mut self, name: impl Into<String>) -> Self {
        self.subnet = name.into();
        self
    }

    /// The transport, as the protocol's `encryption` names it
    /// (`Plaintext`, `SSL`, `ws`, `wss`). Default `Plaintext`.
    pub fn encryption(mut self, encryption: impl Into<String>) -> Self {
        self.encryption = encryption.into();
        self
    }

    /// Whether keys are leased to their writer for an hour. Default true.
    /// Nodes with different settings are on different subnets.
    pub fn leasing(mut self, on: bool) -> Self {
        self.config.leasing = on;
        self
    }

    /// Most keys held. Default 100,000.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.config.max_keys = n;
        self
    }

    /// Largest value (msgpack-encoded bytes). Default 1 MiB.
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.config.max_value_len = bytes;
        self
    }

    /// The msgpack form of this node's id. Default **bin**, unlike a plain
    /// mesh node: py2p's lease rule compares a key's owner with the
    /// writer's using `>`, which raises in py2p (and drops the
    /// connection) when one is bytes and the other str. js2p compares
    /// owners as text, so either form suits it.
    pub fn id_wire(mut self, wire: IdWire) -> Self {
        self.id_wire = wire;
        self
    }

    /// Configures the underlying mesh node (everything but its protocol,
    /// which the subnet, transport and leasing settings make).
    pub fn mesh(mut self, f: impl FnOnce(MeshBuilder) -> MeshBuilder) -> Self {
        self.mesh = f(self.mesh);
        self
    }

    /// The protocol these settings make: `subnet + "1"|"0"`, the transport.
    pub fn protocol(&self) -> Protocol {
        let suffix = if self.config.leasing { "1" } else { "0" };
        Protocol::new(format!("{}{suffix}", self.subnet), self.encryption.as_str())
    }

    /// Starts the node on `addr` (`HOST:PORT`; port 0 picks a free one).
    ///
    /// # Errors
    /// As [`MeshBuilder::bind`].
    pub async fn bind(self, addr: &str) -> Result<SyncSocket, Error> {
        let protocol = self.protocol();
        let state = SyncState::new(self.config);
        let view = state.view();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let driver = SyncDriver {
            layer: state,
            publisher: SyncPublisher {
                events: events.clone(),
            },
        };
        let mesh = self
            .mesh
            .protocol(protocol)
            .id_wire(self.id_wire)
            .bind_with_layer(addr, Box::new(driver))
            .await?;
        Ok(SyncSocket { mesh, view, events })
    }
}

/// A node of a sync network: a replicated dictionary. Cheap to clone;
/// dropping the last clone (and every clone of [`mesh`](Self::mesh))
/// shuts the node down. Reads are local and immediate; writes are checked
/// against the lease and the bounds in the node, then flooded.
#[derive(Clone, Debug)]
pub struct SyncSocket {
    mesh: MeshSocket,
    view: SyncView,
    events: broadcast::Sender<SyncEvent>,
}

impl SyncSocket {
    /// Starts a node with default settings (subnet `sync`, leasing on,
    /// Plaintext) on `addr`.
    ///
    /// # Errors
    /// As [`MeshBuilder::bind`].
    pub async fn bind(addr: &str) -> Result<SyncSocket, Error> {
        SyncBuilder::default().bind(addr).await
    }

    /// A builder with the defaults.
    pub fn builder() -> SyncBuilder {
        SyncBuilder::default()
    }

    /// The mesh node underneath: connect, broadcast, whisper, receive,
    /// events — a sync network is also an alert network.
    pub fn mesh(&self) -> &MeshSocket {
        &self.mesh
    }

    /// The value at `key` (`&str` keys are bin, as py2p; see [`SyncKey`]).
    pub fn get(&self, key: impl Into<SyncKey>) -> Option<Packet> {
        self.view.get(&key.into()).map(|v| (*v).clone())
    }

    /// The value at `key` with its owner and time.
    pub fn entry(&self, key: impl Into<SyncKey>) -> Option<Entry> {
        self.view.read().get(&key.into()).cloned()
    }

    /// Who wrote `key` last, and when (Unix seconds).
    pub fn owner(&self, key: impl Into<SyncKey>) -> Option<(PeerId, u64)> {
        self.entry(key).map(|e| (e.meta.owner, e.meta.time))
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<SyncKey> {
        self.view.read().iter().map(|(k, _)| k.clone()).collect()
    }

    /// Every value, in key order.
    pub fn values(&self) -> Vec<Packet> {
        self.view
            .read()
            .iter()
            .map(|(_, e)| (*e.value).clone())
            .collect()
    }

    /// Every key and value, in key order (a copy: the dictionary may change
    /// while you iterate).
    pub fn iter(&self) -> impl Iterator<Item = (SyncKey, Packet)> {
        let items: Vec<(SyncKey, Packet)> = self
            .view
            .read()
            .iter()
            .map(|(k, e)| (k.clone(), (*e.value).clone()))
            .collect();
        items.into_iter()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.view.read().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the whole dictionary with metadata.
    pub fn snapshot(&self) -> BTreeMap<SyncKey, Entry> {
        self.view
            .read()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SyncState, &mut LayerCtx<'_>) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.mesh
            .with_layer(move |driver: &mut SyncDriver, ctx| driver.run(ctx, f))
            .await
    }

    /// Sets `key` to `value` here and on every node.
    ///
    /// # Errors
    /// [`Error::Sync`] with [`SyncError::Leased`](crate::protocol::sync::SyncError::Leased)
    /// when another node holds the key's lease, or a bound; nothing is
    /// sent then. [`Error::Shutdown`] if the node stopped.
    pub async fn set(
        &self,
        key: impl Into<SyncKey>,
        value: impl Into<Packet>,
    ) -> Result<(), Error> {
        let (key, value) = (key.into(), value.into());
        Ok(self.run(move |s, ctx| s.set(ctx, key, value)).await??)
    }

    /// Sets several keys: all are checked first, then all are sent.
    ///
    /// # Errors
    /// As [`set`](Self::set); nothing is stored or sent on error.
    pub async fn update(&self, items: Vec<(SyncKey, Packet)>) -> Result<(), Error> {
        Ok(self.run(move |s, ctx| s.update(ctx, items)).await??)
    }

    /// Deletes `key` here and on every node; returns its value (`None`,
    /// and nothing sent, if there was none).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn delete(&self, key: impl Into<SyncKey>) -> Result<Option<Packet>, Error> {
        let key = key.into();
        let removed = self.run(move |s, ctx| s.delete(ctx, &key)).await??;
        Ok(removed.map(|v| (*v).clone()))
    }

    /// Merges the map `delta` into the map at `key` here and on every
    /// node; returns the merged map.
    ///
    /// # Errors
    /// [`Error::Sync`] when `delta` is not a map, `key` holds something
    /// else than a map, the lease or a bound forbids it.
    pub async fn apply_delta(
        &self,
        key: impl Into<SyncKey>,
        delta: Packet,
    ) -> Result<Packet, Error> {
        let key = key.into();
        let merged = self
            .run(move |s, ctx| s.apply_delta(ctx, key, delta))
            .await??;
        Ok((*merged).clone())
    }

    /// Subscribes to changes: [`SyncEvent::Updated`] and
    /// [`SyncEvent::Deleted`], for local and remote writes alike. A
    /// subscriber that falls more than 4,096 events behind sees
    /// `RecvError::Lagged` and should re-read what it needs.
    pub fn events(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// Waits until the value at `key` satisfies `pred` (given `None` when
    /// the key is absent), up to `timeout`; returns that value.
    ///
    /// # Errors
    /// [`Error::Timeout`] if it does not happen in time;
    /// [`Error::Shutdown`] if the node stops.
    pub async fn wait_for(
        &self,
        key: impl Into<SyncKey>,
        pred: impl Fn(Option<&Packet>) -> bool,
        timeout: Duration,
    ) -> Result<Option<Arc<Packet>>, Error> {
        let key = key.into();
        let mut events = self.events.subscribe();
        let wait = async {
            loop {
                let now = self.view.get(&key);
                if pred(now.as_deref()) {
                    return Ok(now);
                }
                match events.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(Error::Shutdown),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }

    /// Remote writes that were not applied, by reason.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn stats(&self) -> Result<SyncStats, Error> {
        self.run(|s, _| s.stats()).await
    }

    /// Closes every connection and stops the node (as
    /// [`MeshSocket::close`]).
    pub async fn close(&self) {
        self.mesh.close().await;
    }
}
