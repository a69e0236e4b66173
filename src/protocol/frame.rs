//! [`FrameDecoder`]: splits a byte stream into whole frames.
//!
//! Feed it chunks as they arrive; take frames out. A length prefix above
//! the configured maximum is refused as soon as its four bytes are seen,
//! before anything of that size is buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::error::CodecError;
use super::message::PREFIX_LEN;

/// One whole frame as it arrived: the length prefix and the body. Relaying
/// a broadcast sends [`Frame::raw`] on unchanged.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    raw: Bytes,
}

impl Frame {
    /// The frame's bytes, length prefix included.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The body, after the length prefix.
    pub fn body(&self) -> &[u8] {
        self.raw.get(PREFIX_LEN..).unwrap_or_default()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} bytes)", self.raw.len())
    }
}

/// Room offered to reads between frames, at least and at most.
const MIN_ROOM: usize = 1024;
const MAX_ROOM: usize = 64 * 1024;

/// Incremental frame splitter.
///
/// # Examples
/// ```
/// use rs2p::protocol::FrameDecoder;
/// let mut dec = FrameDecoder::new(1024);
/// dec.feed(&[0, 0, 0, 3, b'a']);
/// assert!(dec.next_frame().unwrap().is_none()); // need more bytes
/// dec.feed(b"bc\x00\x00");
/// assert_eq!(dec.next_frame().unwrap().unwrap().body(), b"abc");
/// assert!(dec.next_frame().unwrap().is_none());
/// assert!(dec.finish().is_err()); // stream ended inside a prefix
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame_len: usize,
    /// How much room to offer the next read between frames: grows while
    /// reads fill what they are offered (a busy stream), shrinks back when
    /// they do not (an idle connection holds little).
    room: usize,
    /// The room offered to the last read, to see whether it was filled.
    offered: usize,
}

impl FrameDecoder {
    /// A splitter that refuses bodies longer than `max_frame_len`.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame_len,
            room: MIN_ROOM,
            offered: 0,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Tells the decoder how many bytes the last read (after
    /// [`prepare_read`](Self::prepare_read)) put in the buffer, so the room
    /// it offers next follows the traffic.
    pub fn note_read(&mut self, n: usize) {
        self.room = if n >= self.offered {
            (self.room * 2).min(MAX_ROOM)
        } else {
            (self.room / 2).max(MIN_ROOM)
        };
    }

    /// The buffer that received bytes go into, for readers that fill it
    /// directly (such as `AsyncReadExt::read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Makes room for the next read: up to 64 KiB, never more than the
    /// frame being received still needs, so a peer that announces a large
    /// frame cannot make us reserve memory it has not sent. Between frames
    /// the room follows the traffic (see [`note_read`](Self::note_read)):
    /// 1 KiB on an idle connection, up to 64 KiB on a busy one.
    pub fn prepare_read(&mut self) {
        let want = match self.announced() {
            Some(len) if len <= self.max_frame_len => (PREFIX_LEN + len)
                .saturating_sub(self.buf.len())
                .clamp(1, MAX_ROOM),
            _ => self.room,
        };
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        self.offered = self.buf.capacity() - self.buf.len();
    }

    /// Bytes buffered that do not yet form a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The body length announced by the buffered prefix, once it is complete.
    fn announced(&self) -> Option<usize> {
        let prefix: [u8; PREFIX_LEN] = self.buf.get(..PREFIX_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(prefix) as usize)
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`CodecError::FrameTooLarge`] as soon as a prefix above the limit is
    /// complete. The stream cannot be resynchronised after that: drop it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        let Some(len) = self.announced() else {
            return Ok(None);
        };
        if len > self.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: self.max_frame_len,
            });
        }
        let total = PREFIX_LEN + len;
        if self.buf.len() < total {
            return Ok(None);
        }
        let raw = self.buf.split_to(total).freeze();
        Ok(Some(Frame { raw }))
    }

    /// Call at end of stream.
    ///
    /// # Errors
    /// [`CodecError::Truncated`] if the stream ended inside a frame; a clean
    /// end (nothing buffered) is `Ok`.
    pub fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let expected = self.announced().map_or(PREFIX_LEN, |len| PREFIX_LEN + len);
        Err(CodecError::Truncated {
            expected,
            got: self.buf.len(),
        })
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.buf.advance(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_prefix_is_refused_before_buffering() {
        let mut dec = FrameDecoder::new(100);
        dec.feed(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            dec.next_frame(),
            Err(CodecError::FrameTooLarge {
                len: 0xffff_ffff,
                max: 100
            })
        ));
        assert!(dec.buf.capacity() < 1000);
    }

    #[test]
    fn splits_byte_by_byte() {
        let mut stream = Vec::new();
        for body in [&b"one"[..], b"", b"three"] {
            stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        let mut dec = FrameDecoder::new(100);
        let mut bodies = Vec::new();
        for byte in stream {
            dec.feed(&[byte]);
            while let Some(frame) = dec.next_frame().unwrap() {
                bodies.push(frame.body().to_vec());
            }
        }
        assert_eq!(bodies, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(dec.finish().is_ok());
    }

    #[test]
    fn eof_mid_frame_is_truncation() {
        let mut dec = FrameDecoder::new(100);
        dec.feed(&[0, 0, 0, 10, 1, 2]);
        assert!(dec.next_frame().unwrap().is_none());
        assert_eq!(
            dec.finish(),
            Err(CodecError::Truncated {
                expected: 14,
                got: 6
            })
        );
    }
}
