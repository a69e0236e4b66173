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
    /// Spare room offered to the next direct read (see `buffer_mut`).
    read_size: usize,
    /// Bytes taken out of the buffer so far (frames and clears).
    consumed: u64,
    /// Stream position and spare room when the buffer was last handed out.
    offered_at: u64,
    offered: usize,
}

/// Least spare room offered to a direct read.
const MIN_READ: usize = 512;
/// Most spare room offered to a direct read.
const MAX_READ: usize = 64 * 1024;

impl FrameDecoder {
    /// A splitter that refuses bodies longer than `max_frame_len`.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame_len,
            read_size: 2 * MIN_READ,
            consumed: 0,
            offered_at: 0,
            offered: 0,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The buffer that received bytes go into, for readers that fill it
    /// directly (such as `AsyncReadExt::read_buf`), with spare room for
    /// the next read.
    ///
    /// The room adapts to the traffic: it doubles (up to 64 KiB) while
    /// reads fill it and halves (down to 512 bytes) while they use less
    /// than a quarter, so a busy stream is read in large chunks (one
    /// system call for many frames) and an idle connection keeps a small
    /// buffer.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        let pos = self.consumed + self.buf.len() as u64;
        if self.offered > 0 {
            let filled = pos.saturating_sub(self.offered_at) as usize;
            if filled >= self.offered {
                self.read_size = (self.read_size * 2).min(MAX_READ);
            } else if filled < self.offered / 4 {
                self.read_size = (self.read_size / 2).max(MIN_READ);
            }
        }
        if self.buf.capacity() - self.buf.len() < self.read_size {
            self.buf.reserve(self.read_size);
        }
        self.offered = self.buf.capacity() - self.buf.len();
        self.offered_at = pos;
        &mut self.buf
    }

    /// Makes room for the next read: up to 64 KiB, never more than the
    /// frame being received still needs (or 16 KiB between frames), so a
    /// peer that announces a large frame cannot make us reserve memory it
    /// has not sent.
    pub fn prepare_read(&mut self) {
        const STEP: usize = 64 * 1024;
        const IDLE: usize = 16 * 1024;
        let want = match self.announced() {
            Some(len) if len <= self.max_frame_len => (PREFIX_LEN + len)
                .saturating_sub(self.buf.len())
                .clamp(1, STEP),
            _ => IDLE,
        };
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
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
        self.consumed += total as u64;
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
        self.consumed += self.buf.len() as u64;
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
    fn read_room_grows_with_full_reads_and_shrinks_when_idle() {
        let mut dec = FrameDecoder::new(1 << 20);
        let frame = |n: usize| {
            let mut f = (n as u32).to_be_bytes().to_vec();
            f.resize(4 + n, 7);
            f
        };
        // Reads that fill the room offered: it grows to the maximum.
        let stream: Vec<u8> = (0..20_000).flat_map(|_| frame(100)).collect();
        let mut at = 0;
        for _ in 0..20 {
            let buf = dec.buffer_mut();
            let room = buf.capacity() - buf.len();
            buf.extend_from_slice(&stream[at..at + room]);
            at += room;
            while dec.next_frame().unwrap().is_some() {}
        }
        assert_eq!(dec.read_size, MAX_READ);
        // Finish the frame under way, then small reads: it shrinks back.
        let rest = 104 - at % 104;
        dec.buffer_mut().extend_from_slice(&stream[at..at + rest]);
        while dec.next_frame().unwrap().is_some() {}
        for _ in 0..20 {
            dec.buffer_mut().extend_from_slice(&frame(10));
            while dec.next_frame().unwrap().is_some() {}
        }
        assert_eq!(dec.read_size, MIN_READ);
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
