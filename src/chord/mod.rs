//! [`ChordSocket`]: a distributed hash table over the mesh,
//! wire-compatible with py2p's `ChordSocket`.
//!
//! Every key is stored in five tables spread over the storing nodes of the
//! ring, and a read needs three of them to agree (see
//! [`protocol::chord`](crate::protocol::chord) for the protocol and what
//! rs2p does better than the references). A node starts as a *leech*: it
//! reads and writes but holds nothing until it [`join`](ChordSocket::join)s.
//! The protocol logic is the pure layer [`ChordState`]; this module is the
//! thin tokio handle over a node running it. The node is a full mesh node
//! too: [`ChordSocket::mesh`] reaches its broadcasts, whispers and events.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! use rs2p::chord::ChordSocket;
//!
//! let a = ChordSocket::bind("127.0.0.1:0").await?;
//! let b = ChordSocket::bind("127.0.0.1:0").await?;
//! b.mesh().connect("127.0.0.1", a.mesh().addr().port(), None).await?;
//! a.join().await?;
//! b.join().await?;
//!
//! a.set("greeting", "hello").await?;
//! let value = b.get("greeting").await?;
//! assert_eq!(value.as_str(), Some("hello"));
//!
//! // A key nobody set: every table answers nil.
//! assert!(matches!(
//!     b.get("nothing").await,
//!     Err(rs2p::Error::Chord(rs2p::protocol::chord::ChordError::NotFound))
//! ));
//! # a.close().await; b.close().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};

use crate::net::published::{Published, Publisher};
use crate::net::{Error, MeshBuilder, MeshSocket};
use crate::protocol::chord::{ChordConfig, ChordEvent, ChordState, ChordStats, GetId, GetResult};
use crate::protocol::mesh::LayerCtx;
use crate::protocol::{IdWire, Packet, Protocol};

/// The subnet of chord networks unless told otherwise, as in the
/// references.
pub const DEFAULT_SUBNET: &str = "chord";

/// Events kept for slow subscribers before they lag.
const EVENT_CAPACITY: usize = 4096;

/// Runs the pure [`ChordState`] in the node's actor, publishes key list
/// changes and hands each finished get to whoever waits for it.
type ChordDriver = Published<ChordState, ChordPublisher>;

/// Sends the state's events to the subscribers and each finished get to
/// its caller.
struct ChordPublisher {
    events: broadcast::Sender<ChordEvent>,
    waiting: BTreeMap<GetId, oneshot::Sender<GetResult>>,
}

impl Publisher<ChordState> for ChordPublisher {
    fn publish(&mut self, state: &mut ChordState) {
        for event in state.take_events() {
            let _ = self.events.send(event);
        }
        for (id, result) in state.take_results() {
            if let Some(tx) = self.waiting.remove(&id) {
                let _ = tx.send(result);
            }
        }
    }

    fn on_tick(&mut self) {
        // Callers that gave up (dropped their future) are forgotten.
        self.waiting.retain(|_, tx| !tx.is_closed());
    }
}

/// Configures and starts a [`ChordSocket`].
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rs2p::Error> {
/// let node = rs2p::chord::ChordSocket::builder()
///     .subnet("inventory")
///     .max_value_len(64 * 1024)
///     .request_timeout(std::time::Duration::from_secs(3))
///     .bind("127.0.0.1:0")
///     .await?;
/// assert_eq!(node.mesh().protocol().subnet(), "inventory");
/// assert!(!node.is_storing().await?);
/// # node.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ChordBuilder {
    mesh: MeshBuilder,
    subnet: String,
    encryption: String,
    config: ChordConfig,
    id_wire: IdWire,
    join: bool,
}

impl Default for ChordBuilder {
    fn default() -> Self {
        ChordBuilder {
            mesh: MeshBuilder::default(),
            subnet: DEFAULT_SUBNET.to_owned(),
            encryption: "Plaintext".to_owned(),
            config: ChordConfig::default(),
            id_wire: IdWire::Bin,
            join: false,
        }
    }
}

impl ChordBuilder {
    /// The network's name. Default `chord`.
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

    /// All bounds and timings at once.
    pub fn config(mut self, config: ChordConfig) -> Self {
        self.config = config;
        self
    }

    /// Most keys known. Default 100,000.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.config.max_keys = n;
        self
    }

    /// Largest value (msgpack-encoded bytes). Default 1 MiB.
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.config.max_value_len = bytes;
        self
    }

    /// How long a get waits for answers. Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout_ms = timeout.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// Whether the node stores data from the start (as calling
    /// [`ChordSocket::join`] right after binding). Default false.
    pub fn joined(mut self, on: bool) -> Self {
        self.join = on;
        self
    }

    /// The msgpack form of this node's id. Default **bin**, as py2p sends
    /// it (py2p compares ids it received in either form with its own).
    pub fn id_wire(mut self, wire: IdWire) -> Self {
        self.id_wire = wire;
        self
    }

    /// Configures the underlying mesh node (everything but its protocol).
    pub fn mesh(mut self, f: impl FnOnce(MeshBuilder) -> MeshBuilder) -> Self {
        self.mesh = f(self.mesh);
        self
    }

    /// The protocol these settings make.
    pub fn protocol(&self) -> Protocol {
        Protocol::new(self.subnet.as_str(), self.encryption.as_str())
    }

    /// Starts the node on `addr` (`HOST:PORT`; port 0 picks a free one).
    ///
    /// # Errors
    /// As [`MeshBuilder::bind`].
    pub async fn bind(self, addr: &str) -> Result<ChordSocket, Error> {
        let protocol = self.protocol();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let driver = ChordDriver {
            layer: ChordState::new(self.config.clone()),
            publisher: ChordPublisher {
                events: events.clone(),
                waiting: BTreeMap::new(),
            },
        };
        let mesh = self
            .mesh
            .protocol(protocol)
            .id_wire(self.id_wire)
            .bind_with_layer(addr, Box::new(driver))
            .await?;
        let node = ChordSocket {
            mesh,
            events,
            timeout: Duration::from_millis(self.config.request_timeout_ms),
        };
        if self.join {
            node.join().await?;
        }
        Ok(node)
    }
}

/// A node of a chord network: a distributed hash table. Cheap to clone;
/// dropping the last clone (and every clone of [`mesh`](Self::mesh))
/// shuts the node down.
#[derive(Clone, Debug)]
pub struct ChordSocket {
    mesh: MeshSocket,
    events: broadcast::Sender<ChordEvent>,
    timeout: Duration,
}

impl ChordSocket {
    /// Starts a leeching node with default settings (subnet `chord`,
    /// Plaintext) on `addr`.
    ///
    /// # Errors
    /// As [`MeshBuilder::bind`].
    pub async fn bind(addr: &str) -> Result<ChordSocket, Error> {
        ChordBuilder::default().bind(addr).await
    }

    /// A builder with the defaults.
    pub fn builder() -> ChordBuilder {
        ChordBuilder::default()
    }

    /// The mesh node underneath.
    pub fn mesh(&self) -> &MeshSocket {
        &self.mesh
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ChordState, &mut LayerCtx<'_>) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.mesh
            .with_layer(move |driver: &mut ChordDriver, ctx| driver.run(ctx, f))
            .await
    }

    /// Starts storing data: peers hand over what is now this node's.
    ///
    /// # Errors
    /// [`Error::Chord`] if this node's id is not base58 (never for a node
    /// rs2p made); [`Error::Shutdown`].
    pub async fn join(&self) -> Result<(), Error> {
        Ok(self.run(|s, ctx| s.join(ctx)).await??)
    }

    /// Stops storing: every entry goes to the storing peer now responsible
    /// for it (kept here if there is none, until one appears).
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn unjoin(&self) -> Result<(), Error> {
        self.run(|s, ctx| s.unjoin(ctx)).await
    }

    /// Whether this node stores data.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn is_storing(&self) -> Result<bool, Error> {
        self.run(|s, _| s.is_storing()).await
    }

    /// Stores `value` at `key` (`&str` keys are their UTF-8 bytes, as py2p)
    /// in the five tables; announces the key if it is new.
    ///
    /// # Errors
    /// [`Error::Chord`] for a nil value or a bound; nothing is sent then.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Packet>) -> Result<(), Error> {
        let key = Bytes::copy_from_slice(key.as_ref());
        let value = value.into();
        Ok(self.run(move |s, ctx| s.set(ctx, key, value)).await??)
    }

    /// Deletes `key` from the five tables and every node's key list.
    ///
    /// # Errors
    /// [`Error::Chord`] with `UnknownKey` if this node never heard of it.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), Error> {
        let key = key.as_ref().to_vec();
        Ok(self.run(move |s, ctx| s.delete(ctx, &key)).await??)
    }

    /// Reads `key`: the value more than two of its five tables agree on.
    ///
    /// # Errors
    /// [`Error::Chord`] with `NotFound` (every table said nil), `NoQuorum`,
    /// `Timeout` (the configured request timeout) or `Busy`;
    /// [`Error::Shutdown`].
    ///
    /// # Cancel safety
    /// Dropping the future abandons the read; the node forgets it.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Packet, Error> {
        let key = key.as_ref().to_vec();
        let (tx, rx) = oneshot::channel();
        self.mesh
            .with_layer(move |driver: &mut ChordDriver, ctx| {
                let id = driver.layer.get(ctx, &key)?;
                driver.publisher.waiting.insert(id, tx);
                driver.publisher.publish(&mut driver.layer);
                Ok::<_, crate::protocol::chord::ChordError>(())
            })
            .await??;
        // The state machine times the read out; this only guards against a
        // node that stops ticking.
        let guard = self.timeout + Duration::from_secs(2);
        match tokio::time::timeout(guard, rx).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout(guard)),
        }
    }

    /// Merges the map `delta` into the map at `key` (an absent key counts
    /// as empty) in the five tables, then reads the merged map back.
    ///
    /// # Errors
    /// [`Error::Chord`] with `DeltaNotAMap` or a bound (nothing sent), or
    /// as [`get`](Self::get) for the read.
    pub async fn apply_delta(&self, key: impl AsRef<[u8]>, delta: Packet) -> Result<Packet, Error> {
        let k = Bytes::copy_from_slice(key.as_ref());
        self.run(move |s, ctx| s.apply_delta(ctx, k, delta))
            .await??;
        self.get(key).await
    }

    /// Every key this node heard of, in order.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn keys(&self) -> Result<Vec<Bytes>, Error> {
        self.run(|s, _| s.keys().cloned().collect()).await
    }

    /// How many peers told this node they store.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn storing_peers(&self) -> Result<usize, Error> {
        self.run(|s, _| s.storing_peers().count()).await
    }

    /// How many table entries this node holds.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn held(&self) -> Result<usize, Error> {
        self.run(|s, _| s.held().count()).await
    }

    /// Counts of what peers sent that was not applied, and the ring's work.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node stopped.
    pub async fn stats(&self) -> Result<ChordStats, Error> {
        self.run(|s, _| s.stats()).await
    }

    /// Subscribes to key list changes ([`ChordEvent::Added`],
    /// [`ChordEvent::Removed`]), local and remote alike. A subscriber more
    /// than 4,096 events behind sees `RecvError::Lagged`.
    pub fn events(&self) -> broadcast::Receiver<ChordEvent> {
        self.events.subscribe()
    }

    /// Closes every connection and stops the node.
    pub async fn close(&self) {
        self.mesh.close().await;
    }
}
