//! What the application (or a protocol layer) asks the node to send:
//! broadcasts, whispers, keep-alives, and disconnects.

use std::sync::Arc;

use super::close::{CloseReason, SendError};
use super::outgoing::FrameCache;
use super::output::{Action, ConnId};
use super::state::{secs, MeshState};
use bytes::Bytes;

use crate::protocol::{
    CodecError, CodecLimits, InternalMessage, MainFlag, MessageId, Packet, PeerId, SubFlag,
};

/// A message of ours, encoded once and ready to go to every peer: what
/// [`MeshState::send`] does first, made where the application runs (its
/// own task), so the node only records and fans it out.
#[derive(Clone, Debug)]
pub struct Prepared {
    message: Arc<InternalMessage>,
    id: MessageId,
    plain: Bytes,
}

impl Prepared {
    /// The message's main flag: broadcast or whisper.
    pub fn msg_type(&self) -> MainFlag {
        self.message.msg_type
    }

    /// Builds `[msg_type, me, now, flag, packets…]` from node `me` (its id
    /// in the form the node sends it) and encodes it.
    ///
    /// # Errors
    /// [`SendError::ReservedType`] for main flags other than broadcast and
    /// whisper; [`SendError::Codec`] if it exceeds `limits`.
    pub fn new(
        me: &PeerId,
        now_ms: u64,
        flag: Packet,
        msg_type: MainFlag,
        packets: Vec<Packet>,
        limits: &CodecLimits,
    ) -> Result<Self, SendError> {
        if !matches!(msg_type, MainFlag::Broadcast | MainFlag::Whisper) {
            return Err(SendError::ReservedType);
        }
        let mut payload = Vec::with_capacity(packets.len() + 1);
        payload.push(flag);
        payload.extend(packets);
        let message = Arc::new(InternalMessage::new(
            msg_type,
            me.clone(),
            secs(now_ms),
            payload,
        ));
        let (id, plain) = message.encode_body(None);
        if plain.len() > limits.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len: plain.len() as u64,
                max: limits.max_frame_len,
            }
            .into());
        }
        Ok(Prepared {
            message,
            id,
            plain: plain.into(),
        })
    }

    /// The message id.
    pub fn id(&self) -> MessageId {
        self.id
    }
}

impl MeshState {
    /// Sends `[msg_type, me, now, flag, packets…]` to every peer. With
    /// `MainFlag::Broadcast` it floods the mesh (and is recorded, so its
    /// echoes are not delivered back to us); with `Whisper` it reaches
    /// direct peers only. Returns the message id.
    ///
    /// # Errors
    /// [`SendError::ReservedType`] for other main flags;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn send(
        &mut self,
        now_ms: u64,
        flag: Packet,
        msg_type: MainFlag,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        let prepared = Prepared::new(
            &self.me,
            now_ms,
            flag,
            msg_type,
            packets,
            &self.config.limits,
        )?;
        let id = prepared.id;
        self.send_prepared(prepared, out);
        Ok(id)
    }

    /// Sends a message [`Prepared`] elsewhere (with this node's id) to every
    /// peer, as [`send`](Self::send) does.
    pub fn send_prepared(&mut self, prepared: Prepared, out: &mut Vec<Action>) {
        let Prepared { message, id, plain } = prepared;
        if message.msg_type == MainFlag::Broadcast {
            let time = message.time;
            self.waterfall.record_own(id, time, time);
        }
        let mut cache = FrameCache::plain(plain);
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            let method = self.send_method(conn);
            let Ok(frame) = cache.frame(method, &self.config.limits) else {
                continue;
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.last_sent = Some(message.clone());
            }
            out.push(Action::Send { conn, frame });
        }
    }

    /// Sends a user whisper `[whisper, me, now, whisper, packets…]` to one
    /// connected peer.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if the peer is not in the routing table;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn whisper(
        &mut self,
        now_ms: u64,
        peer: &PeerId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        let conn = self.connected_conn(peer)?;
        self.whisper_on(now_ms, conn, packets, out)
    }

    /// Sends `[whisper, me, now, flag, packets…]` on one connection (what a
    /// protocol layer uses for its own sub-flags). Returns the message id.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if the connection has no handshaken
    /// peer; [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn whisper_flag(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        flag: Packet,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        if self.peer_of(conn).is_none() {
            return Err(SendError::NotConnected(format!("connection {conn}")));
        }
        let mut payload = Vec::with_capacity(packets.len() + 1);
        payload.push(flag);
        payload.extend(packets);
        let message = Arc::new(self.own_message(MainFlag::Whisper, now_ms, payload));
        let method = self.send_method(conn);
        let (id, body) = message.encode_body(method);
        let frame = crate::protocol::frame_from_body(&body, &self.config.limits)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_sent = Some(message);
        }
        out.push(Action::Send { conn, frame });
        Ok(id)
    }

    /// A user whisper on a connection.
    pub(super) fn whisper_on(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        self.whisper_flag(now_ms, conn, SubFlag::Whisper.as_u8().into(), packets, out)
    }

    /// Sends a keep-alive (`[whisper, ping]`, ignored by every peer) on
    /// every connection, so idle links stay open through idle timeouts.
    pub fn keepalive(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            self.send_own(
                now_ms,
                conn,
                MainFlag::Whisper,
                vec![SubFlag::Ping.as_u8().into()],
                out,
            );
        }
    }

    /// Closes the connection to a peer; false if it is not connected.
    pub fn disconnect(&mut self, now_ms: u64, peer: &PeerId, out: &mut Vec<Action>) -> bool {
        match self.routing.get(peer).copied() {
            Some(conn) => {
                self.close(now_ms, conn, CloseReason::Requested, out);
                true
            }
            None => false,
        }
    }

    /// The connection of a peer in the routing table.
    pub(super) fn connected_conn(&self, peer: &PeerId) -> Result<ConnId, SendError> {
        self.routing
            .get(peer)
            .copied()
            .ok_or_else(|| SendError::NotConnected(peer.to_string()))
    }
}
