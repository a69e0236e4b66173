//! What a [`MeshSocket`] sends and receives: broadcasts, whispers,
//! replies, the receive queue, events and handlers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};

use super::actor::unix_now_ms;
use super::actor::{Command, Handler};
use super::error::Error;
use super::message::{Connection, Event, Message};
use super::socket::MeshSocket;
use crate::protocol::mesh::Prepared;
use crate::protocol::{MainFlag, MessageId, Packet, PeerId, SubFlag};

impl MeshSocket {
    /// Broadcasts `packets` to every node of the mesh. Returns the message id.
    ///
    /// # Errors
    /// [`Error::Send`] if the message exceeds the frame limit;
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// let id = b.send(packets!["hello", 1, true]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.id(), id);
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, packets: Vec<Packet>) -> Result<MessageId, Error> {
        self.send_with(
            packets,
            SubFlag::Broadcast.as_u8().into(),
            MainFlag::Broadcast,
        )
        .await
    }

    /// Sends with an explicit sub-flag (packet 0) and main flag, as the
    /// references' `send(packets, flag, type)`. `msg_type` must be
    /// `Broadcast` (flood the mesh) or `Whisper` (direct peers only).
    ///
    /// # Errors
    /// [`Error::Send`] with [`SendError::ReservedType`](crate::protocol::mesh::SendError::ReservedType)
    /// for other main flags; otherwise as [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// use rs2p::protocol::MainFlag;
    /// // Packet 0 is the application's own flag, above the reserved range.
    /// b.send_with(packets!["x"], 0x40.into(), MainFlag::Whisper).await?;
    /// assert!(b.send_with(packets![], 0.into(), MainFlag::Renegotiate).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn send_with(
        &self,
        packets: Vec<Packet>,
        flag: Packet,
        msg_type: MainFlag,
    ) -> Result<MessageId, Error> {
        // Encoded and hashed here, in the caller's task; the node records
        // it and fans it out without a round trip back to us.
        let shared = &self.shared;
        let prepared = Prepared::new(
            &shared.sender_id,
            unix_now_ms(),
            flag,
            msg_type,
            packets,
            &shared.limits,
        )?;
        let id = prepared.id();
        shared
            .sends
            .send(prepared)
            .await
            .map_err(|_| Error::Shutdown)?;
        Ok(id)
    }

    /// Sends `packets` directly to one connected peer.
    ///
    /// # Errors
    /// [`Error::Send`] if the peer is not connected.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.whisper(a.id(), packets!["just for you"]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.kind(), rs2p::MessageKind::Whisper);
    /// # Ok(()) }
    /// ```
    pub async fn whisper(&self, peer: &PeerId, packets: Vec<Packet>) -> Result<MessageId, Error> {
        self.ask(|done| Command::Whisper {
            to: peer.clone(),
            packets,
            done,
        })
        .await?
    }

    /// Replies to a node by id, as [`Message::reply`] does: directly if
    /// connected, otherwise through a route request.
    ///
    /// # Errors
    /// [`Error::Send`] if too many replies are waiting for routes.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.reply_to(a.id(), packets!["answer"]).await?;
    /// assert_eq!(a.next_message().await?.packets()[0].as_str(), Some("answer"));
    /// # Ok(()) }
    /// ```
    pub async fn reply_to(&self, peer: &PeerId, packets: Vec<Packet>) -> Result<(), Error> {
        self.ask(|done| Command::Reply {
            to: peer.clone(),
            packets,
            done: Some(done),
        })
        .await?
    }

    /// Takes the oldest queued message, if any.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert!(a.recv().is_none());
    /// b.send(packets!["one"]).await?;
    /// let _ = a.next_message().await?; // or poll recv() until it returns Some
    /// assert!(a.recv().is_none());
    /// # Ok(()) }
    /// ```
    pub fn recv(&self) -> Option<Message> {
        self.shared
            .inbox
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Takes up to `n` queued messages, oldest first.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// for i in 0..3 { b.send(packets![i]).await?; }
    /// let mut got = vec![a.next_message().await?];
    /// while got.len() < 3 {
    ///     got.extend(a.recv_many(3 - got.len()));
    ///     if got.len() < 3 {
    ///         got.push(a.next_message().await?);
    ///     }
    /// }
    /// assert_eq!(got[2].packets()[0].as_i64(), Some(2));
    /// # Ok(()) }
    /// ```
    pub fn recv_many(&self, n: usize) -> Vec<Message> {
        let mut queue = self
            .shared
            .inbox
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let take = n.min(queue.len());
        queue.drain(..take).collect()
    }

    /// Waits for the next queued message.
    ///
    /// Cancel safety: cancel-safe; no message is lost if the future is dropped.
    ///
    /// # Errors
    /// [`Error::Shutdown`] once the node has stopped and the queue is empty.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hi"]).await?;
    /// let msg = tokio::time::timeout(std::time::Duration::from_secs(5), a.next_message()).await.expect("in time")?;
    /// assert_eq!(msg.sender(), b.id());
    /// # Ok(()) }
    /// ```
    pub async fn next_message(&self) -> Result<Message, Error> {
        loop {
            let notified = self.shared.inbox.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.recv() {
                return Ok(m);
            }
            if self.shared.done.is_cancelled() {
                return Err(Error::Shutdown);
            }
            tokio::select! {
                _ = notified => {}
                _ = self.shared.done.cancelled() => {}
            }
        }
    }

    /// A subscription to this node's events. Each subscriber sees every
    /// event raised after it subscribed; a subscriber that falls more than
    /// 1,024 events behind gets `RecvError::Lagged`.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{Event, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let mut events = a.events();
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(events.recv().await.unwrap(), Event::Connect);
    /// assert_eq!(events.recv().await.unwrap(), Event::PeerJoined(b.id().clone()));
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// This node's events as a [`Stream`]: every event raised after the
    /// call, as [`events`](Self::events) gives them, but with falling
    /// behind made visible in the stream itself: a subscriber that falls
    /// more than 1,024 events behind gets `Err(Lagged(n))` for the `n`
    /// events it missed, then the events after them. The stream ends once
    /// the node has shut down and the events raised before are read.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use futures_util::StreamExt;
    /// use rs2p::{Event, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let mut events = a.event_stream();
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(events.next().await, Some(Ok(Event::Connect)));
    /// assert_eq!(events.next().await, Some(Ok(Event::PeerJoined(b.id().clone()))));
    /// a.close().await;
    /// // What was raised before the shutdown is still there, then the end.
    /// while let Some(event) = events.next().await {
    ///     println!("{event:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn event_stream(&self) -> EventStream {
        EventStream::new(self.shared.events.subscribe(), self.shared.done.clone())
    }

    /// Adds a message handler. Handlers run on the node's task, in
    /// registration order, after the protocol's own; the first to return
    /// `true` handles the message, which then is not queued. Handlers must
    /// not block.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// node.register_handler(|msg, _conn| {
    ///     // Answer pings, let everything else through to recv().
    ///     if msg.packets().first().and_then(|p| p.as_str()) == Some("ping") {
    ///         let _ = msg.reply(rs2p::packets!["pong"]);
    ///         return true;
    ///     }
    ///     false
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn register_handler<F>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(&Message, &Connection) -> bool + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(handler);
        self.command(Command::RegisterHandler(handler))
    }
}

/// A subscriber of [`MeshSocket::event_stream`] fell behind: this many
/// events were dropped before it read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} node events were missed: the subscriber fell too far behind")]
pub struct Lagged(pub u64);

type Next = (Option<Result<Event, Lagged>>, broadcast::Receiver<Event>);

/// The events of a node as a [`Stream`] of `Result<Event, Lagged>`: see
/// [`MeshSocket::event_stream`].
pub struct EventStream {
    next: ReusableBoxFuture<'static, Next>,
    done: CancellationToken,
    ended: bool,
}

impl EventStream {
    fn new(rx: broadcast::Receiver<Event>, done: CancellationToken) -> Self {
        EventStream {
            next: ReusableBoxFuture::new(next_event(rx, done.clone())),
            done,
            ended: false,
        }
    }
}

/// The next event; `None` once the channel is closed, or the node is done
/// and nothing is left to read.
async fn next_event(mut rx: broadcast::Receiver<Event>, done: CancellationToken) -> Next {
    use broadcast::error::{RecvError, TryRecvError};
    let item = tokio::select! {
        biased;
        r = rx.recv() => match r {
            Ok(event) => Some(Ok(event)),
            Err(RecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(RecvError::Closed) => None,
        },
        () = done.cancelled() => match rx.try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(TryRecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(_) => None,
        },
    };
    (item, rx)
}

impl Stream for EventStream {
    type Item = Result<Event, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let (item, rx) = std::task::ready!(self.next.poll(cx));
        if item.is_none() {
            self.ended = true;
        } else {
            let done = self.done.clone();
            self.next.set(next_event(rx, done));
        }
        Poll::Ready(item)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
