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

    /// Sends an answer to a peer's request (a resend, a peer list, a route
    /// response, a compression answer) if the peer's reply budget allows:
    /// the budget refills at `reply_rate` bytes per second up to
    /// `reply_burst`, and an answer goes when it is positive. Answers over
    /// budget are counted in [`MeshState::replies_refused`], not sent.
    pub(super) fn send_reply(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let method = self.send_method(conn);
        let (rate, burst) = (self.config.reply_rate, self.config.reply_burst);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let elapsed = now_ms.saturating_sub(c.reply_at_ms) as f64 / 1000.0;
        c.reply_at_ms = now_ms.max(c.reply_at_ms);
        c.reply_budget = (c.reply_budget + elapsed * f64::from(rate)).min(f64::from(burst));
        if c.reply_budget <= 0.0 {
            self.replies_refused += 1;
            return;
        }
        let (_, body) = message.encode_body(method);
        c.reply_budget -= body.len() as f64;
        match frame_from_body(&body, &self.config.limits) {
            Ok(frame) => out.push(Action::Send { conn, frame }),
            Err(e) => self.record_error(format!("not sent: {e}")),
        }
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
