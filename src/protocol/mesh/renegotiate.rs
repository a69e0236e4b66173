//! Renegotiation (main flag renegotiate): agreeing on a compression list
//! with a peer, and re-sending the last message on request.

use super::close::{CloseReason, SendError};
use super::handshake::parse_methods;
use super::output::{Action, ConnId};
use super::state::MeshState;
use crate::protocol::{Compression, InternalMessage, MainFlag, Packet, PeerId, SubFlag};

impl MeshState {
    /// Asks a peer to use these compression methods from now on.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if the peer is not in the routing table.
    pub fn renegotiate(
        &mut self,
        now_ms: u64,
        peer: &PeerId,
        methods: &[Compression],
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        let conn = self.connected_conn(peer)?;
        let list = Packet::Array(methods.iter().map(|m| Packet::from(m.as_u8())).collect());
        self.send_own(
            now_ms,
            conn,
            MainFlag::Renegotiate,
            vec![SubFlag::Compression.as_u8().into(), list],
            out,
        );
        Ok(())
    }

    /// Asks a peer to re-send the last message it sent us.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if the peer is not in the routing table.
    pub fn request_resend(
        &mut self,
        now_ms: u64,
        peer: &PeerId,
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        let conn = self.connected_conn(peer)?;
        self.send_own(
            now_ms,
            conn,
            MainFlag::Renegotiate,
            vec![SubFlag::Resend.as_u8().into()],
            out,
        );
        Ok(())
    }

    /// A renegotiate message from a peer: adopt its compression list (and
    /// answer with what we share, if it changed), or re-send our last
    /// message on that connection.
    pub(super) fn on_renegotiate(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        match message.sub_flag() {
            Some(SubFlag::Compression) => {
                let Some(list) = message.payload.get(1).and_then(Packet::as_array) else {
                    self.close(
                        now_ms,
                        conn,
                        CloseReason::BadMessage("compression list is not an array"),
                        out,
                    );
                    return;
                };
                let methods = parse_methods(list);
                let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.peer.as_mut()) else {
                    return;
                };
                let changed = h.compression != methods;
                h.compression = methods;
                if changed {
                    let theirs = &h.compression;
                    let common: Vec<Packet> = self
                        .config
                        .compression
                        .iter()
                        .filter(|m| theirs.contains(m))
                        .map(|m| Packet::from(m.as_u8()))
                        .collect();
                    let answer = self.own_message(
                        MainFlag::Renegotiate,
                        now_ms,
                        vec![SubFlag::Compression.as_u8().into(), Packet::Array(common)],
                    );
                    self.send_reply(now_ms, conn, &answer, out);
                }
            }
            Some(SubFlag::Resend) => {
                let last = self.conns.get(&conn).and_then(|c| c.last_sent.clone());
                if let Some(last) = last {
                    self.send_reply(now_ms, conn, &last, out);
                }
            }
            _ => {}
        }
    }
}
