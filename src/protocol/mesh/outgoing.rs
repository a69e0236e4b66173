//! Building and framing messages from this node: the compression each
//! connection reads, our id in the form each peer uses, and the
//! per-compression frame cache shared by broadcasts and relays.

use bytes::Bytes;

use super::output::{Action, ConnId};
use super::state::{secs, MeshState};
use crate::protocol::{
    compression, frame_from_body, CodecError, CodecLimits, Compression, Frame, InternalMessage,
    MainFlag, Packet,
};

/// One message framed once per compression method, as its targets need
/// it: a broadcast to peers with different methods, or a relay that passes
/// the received bytes on where the method matches and re-compresses the
/// body (never re-encodes the msgpack) where it does not.
#[derive(Debug)]
pub(super) struct FrameCache {
    /// `checksum ‖ packed`, uncompressed; made on first need.
    plain: Option<Bytes>,
    /// A received frame and the method its body is compressed with.
    received: Option<(Frame, Option<Compression>)>,
    /// Frames made here, one per method (no allocation when every target
    /// reads what was received or what was first made).
    frames: Vec<(Option<Compression>, Bytes)>,
}

impl FrameCache {
    /// For a message of ours: its uncompressed body.
    pub(super) fn plain(body: Bytes) -> Self {
        FrameCache {
            plain: Some(body),
            received: None,
            frames: Vec::new(),
        }
    }

    /// For a received frame whose body is compressed with `method`.
    pub(super) fn received(frame: Frame, method: Option<Compression>) -> Self {
        FrameCache {
            plain: None,
            received: Some((frame, method)),
            frames: Vec::new(),
        }
    }

    /// The whole frame (length prefix included) for a peer reading
    /// `method`.
    pub(super) fn frame(
        &mut self,
        method: Option<Compression>,
        limits: &CodecLimits,
    ) -> Result<Bytes, CodecError> {
        if let Some((frame, m)) = &self.received {
            if *m == method {
                return Ok(frame.raw().clone());
            }
        }
        if let Some((_, f)) = self.frames.iter().find(|(m, _)| *m == method) {
            return Ok(f.clone());
        }
        let plain = match &self.plain {
            Some(p) => p.clone(),
            None => {
                let p = match &self.received {
                    Some((frame, Some(m))) => Bytes::from(compression::decompress(
                        *m,
                        frame.body(),
                        limits.max_decompressed_len,
                    )?),
                    Some((frame, None)) => Bytes::copy_from_slice(frame.body()),
                    None => Bytes::new(),
                };
                self.plain = Some(p.clone());
                p
            }
        };
        let body = match method {
            Some(m) => Bytes::from(compression::compress(m, &plain)),
            None => plain,
        };
        let frame = frame_from_body(&body, limits)?;
        self.frames.push((method, frame.clone()));
        Ok(frame)
    }
}

impl MeshState {
    /// The compression used towards a connection.
    pub(super) fn send_method(&self, conn: ConnId) -> Option<Compression> {
        let theirs = &self.conns.get(&conn)?.peer.as_ref()?.compression;
        Compression::select(&self.config.compression, theirs)
    }

    /// A message from us: `[msg_type, me, now, payload…]`.
    pub(super) fn own_message(
        &self,
        msg_type: MainFlag,
        now_ms: u64,
        payload: Vec<Packet>,
    ) -> InternalMessage {
        InternalMessage::new(msg_type, self.me.clone(), secs(now_ms), payload)
    }

    /// Builds a message from us for one connection and sends it there,
    /// compressed as that connection's peer reads.
    pub(super) fn send_own(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        msg_type: MainFlag,
        payload: Vec<Packet>,
        out: &mut Vec<Action>,
    ) {
        let msg = self.own_message(msg_type, now_ms, payload);
        let method = self.send_method(conn);
        self.send_message(conn, &msg, method, out);
    }

    /// Frames a message with `method` and sends it on `conn`; a message
    /// over the frame limit is recorded as an error and not sent.
    pub(super) fn send_message(
        &mut self,
        conn: ConnId,
        message: &InternalMessage,
        method: Option<Compression>,
        out: &mut Vec<Action>,
    ) {
        let (_, body) = message.encode_body(method);
        match frame_from_body(&body, &self.config.limits) {
            Ok(frame) => out.push(Action::Send { conn, frame }),
            Err(e) => self.record_error(format!("not sent: {e}")),
        }
    }
}
