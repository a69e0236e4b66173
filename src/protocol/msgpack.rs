//! A minimal-size msgpack encoder and a bounded decoder for [`Packet`].
//!
//! The encoder picks the smallest representation of every value, as
//! u-msgpack (py2p) does, so uncompressed frames are byte-identical to
//! py2p's. The decoder accepts every msgpack type either reference emits,
//! limits nesting depth, never pre-allocates more than the input can hold,
//! and never panics.

use bytes::Bytes;

use super::error::MsgpackError;
use super::packet::{Int, Packet};

/// How deeply arrays and maps may nest in a decoded value.
pub const MAX_DEPTH: usize = 128;

/// Appends the msgpack encoding of `packet` to `out`.
///
/// # Examples
/// ```
/// use rs2p::protocol::msgpack;
/// let mut out = Vec::new();
/// msgpack::encode(&rs2p::Packet::from(300), &mut out);
/// assert_eq!(out, [0xcd, 0x01, 0x2c]);
/// ```
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    match packet {
        Packet::Nil => out.push(0xc0),
        Packet::Bool(false) => out.push(0xc2),
        Packet::Bool(true) => out.push(0xc3),
        Packet::Int(i) => encode_int(*i, out),
        Packet::Float(x) => {
            out.push(0xcb);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Packet::Str(s) => {
            encode_str_header(s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Packet::Bin(b) => {
            encode_bin_header(b.len(), out);
            out.extend_from_slice(b);
        }
        Packet::Array(items) => {
            encode_array_header(items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
        Packet::Map(entries) => {
            encode_len_header(entries.len(), 0x80, 0xde, 0xdf, out);
            for (k, v) in entries {
                encode(k, out);
                encode(v, out);
            }
        }
        Packet::Ext(kind, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n if n <= 0xff => out.extend_from_slice(&[0xc7, n as u8]),
                n if n <= 0xffff => {
                    out.push(0xc8);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    out.push(0xc9);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
            }
            out.push(*kind as u8);
            out.extend_from_slice(data);
        }
    }
}

/// The length of [`encode`]'s output for `packet`, without encoding it.
///
/// # Examples
/// ```
/// use rs2p::{protocol::msgpack, Packet};
/// let p = Packet::from(vec![Packet::from(300), "x".into(), Packet::bin(vec![0; 40])]);
/// let mut out = Vec::new();
/// msgpack::encode(&p, &mut out);
/// assert_eq!(msgpack::encoded_len(&p), out.len());
/// ```
pub fn encoded_len(packet: &Packet) -> usize {
    match packet {
        Packet::Nil | Packet::Bool(_) => 1,
        Packet::Int(i) => int_len(*i),
        Packet::Float(_) => 9,
        Packet::Str(s) => str_header_len(s.len()) + s.len(),
        Packet::Bin(b) => bin_header_len(b.len()) + b.len(),
        Packet::Array(items) => {
            len_header_len(items.len()) + items.iter().map(encoded_len).sum::<usize>()
        }
        Packet::Map(entries) => {
            len_header_len(entries.len())
                + entries
                    .iter()
                    .map(|(k, v)| encoded_len(k) + encoded_len(v))
                    .sum::<usize>()
        }
        Packet::Ext(_, data) => {
            let header = match data.len() {
                1 | 2 | 4 | 8 | 16 => 1,
                n if n <= 0xff => 2,
                n if n <= 0xffff => 3,
                _ => 5,
            };
            header + 1 + data.len()
        }
    }
}

fn int_len(value: Int) -> usize {
    let v = value.as_i128();
    if (-32..0x80).contains(&v) {
        1
    } else if (i128::from(i8::MIN)..=0xff).contains(&v) {
        2
    } else if (i128::from(i16::MIN)..=0xffff).contains(&v) {
        3
    } else if (i128::from(i32::MIN)..=0xffff_ffff).contains(&v) {
        5
    } else {
        9
    }
}

fn str_header_len(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

fn bin_header_len(len: usize) -> usize {
    match len {
        0..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

fn len_header_len(len: usize) -> usize {
    match len {
        0..16 => 1,
        16..=0xffff => 3,
        _ => 5,
    }
}

/// Appends the smallest msgpack encoding of an integer.
pub fn encode_int(value: Int, out: &mut Vec<u8>) {
    let v = value.as_i128();
    if v >= 0 {
        if v < 0x80 {
            out.push(v as u8);
        } else if v <= 0xff {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(v as u64).to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i128::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i128::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i128::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&(v as i64).to_be_bytes());
    }
}

/// Appends the header of a str of `len` bytes.
pub fn encode_str_header(len: usize, out: &mut Vec<u8>) {
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends the header of a bin of `len` bytes.
pub fn encode_bin_header(len: usize, out: &mut Vec<u8>) {
    if len <= 0xff {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= 0xffff {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends the header of an array of `len` items.
pub fn encode_array_header(len: usize, out: &mut Vec<u8>) {
    encode_len_header(len, 0x90, 0xdc, 0xdd, out)
}

fn encode_len_header(len: usize, fix: u8, m16: u8, m32: u8, out: &mut Vec<u8>) {
    if len < 16 {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Decodes exactly one value that fills all of `input`.
///
/// # Errors
/// [`MsgpackError`] when the input is cut short, holds the never-used marker
/// `0xc1`, a str that is not UTF-8, nests deeper than [`MAX_DEPTH`], or has
/// bytes left over after the value.
///
/// # Examples
/// ```
/// use rs2p::protocol::msgpack;
/// let p = msgpack::decode(&[0x92, 0x01, 0xa1, b'x']).unwrap();
/// assert_eq!(p, rs2p::Packet::from(vec![rs2p::Packet::from(1), "x".into()]));
/// assert!(msgpack::decode(&[0x92, 0x01]).is_err());
/// ```
pub fn decode(input: &[u8]) -> Result<Packet, MsgpackError> {
    let mut reader = Reader { input, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != input.len() {
        return Err(MsgpackError::TrailingBytes(input.len() - reader.pos));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::UnexpectedEnd)?;
        let slice = self
            .input
            .get(self.pos..end)
            .ok_or(MsgpackError::UnexpectedEnd)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut buf = [0u8; N];
        buf.copy_from_slice(self.take(N)?);
        Ok(buf)
    }

    fn len8(&mut self) -> Result<usize, MsgpackError> {
        Ok(usize::from(self.byte()?))
    }

    fn len16(&mut self) -> Result<usize, MsgpackError> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize, MsgpackError> {
        usize::try_from(u32::from_be_bytes(self.be()?)).map_err(|_| MsgpackError::UnexpectedEnd)
    }

    fn str(&mut self, len: usize) -> Result<Packet, MsgpackError> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| MsgpackError::InvalidUtf8)?;
        Ok(Packet::Str(text.to_owned()))
    }

    fn bin(&mut self, len: usize) -> Result<Packet, MsgpackError> {
        Ok(Packet::Bin(Bytes::copy_from_slice(self.take(len)?)))
    }

    fn ext(&mut self, len: usize) -> Result<Packet, MsgpackError> {
        let kind = self.byte()? as i8;
        Ok(Packet::Ext(kind, Bytes::copy_from_slice(self.take(len)?)))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Packet, MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        // Every item takes at least one byte: never reserve more than that.
        let mut items = Vec::with_capacity(len.min(self.input.len() - self.pos));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Packet::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Packet, MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        let mut entries = Vec::with_capacity(len.min((self.input.len() - self.pos) / 2));
        for _ in 0..len {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Packet::Map(entries))
    }

    fn int(v: i128) -> Packet {
        Packet::Int(Int::from_i128_unchecked(v))
    }

    fn value(&mut self, depth: usize) -> Result<Packet, MsgpackError> {
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => Self::int(i128::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
            0xc0 => Packet::Nil,
            0xc1 => return Err(MsgpackError::InvalidMarker(marker)),
            0xc2 => Packet::Bool(false),
            0xc3 => Packet::Bool(true),
            0xc4 => {
                let n = self.len8()?;
                self.bin(n)?
            }
            0xc5 => {
                let n = self.len16()?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.len32()?;
                self.bin(n)?
            }
            0xc7 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Packet::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Packet::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Self::int(i128::from(self.byte()?)),
            0xcd => Self::int(i128::from(u16::from_be_bytes(self.be()?))),
            0xce => Self::int(i128::from(u32::from_be_bytes(self.be()?))),
            0xcf => Self::int(i128::from(u64::from_be_bytes(self.be()?))),
            0xd0 => Self::int(i128::from(self.byte()? as i8)),
            0xd1 => Self::int(i128::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Self::int(i128::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Self::int(i128::from(i64::from_be_bytes(self.be()?))),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len8()?;
                self.str(n)?
            }
            0xda => {
                let n = self.len16()?;
                self.str(n)?
            }
            0xdb => {
                let n = self.len32()?;
                self.str(n)?
            }
            0xdc => {
                let n = self.len16()?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Self::int(i128::from(marker as i8)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(p: impl Into<Packet>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&p.into(), &mut out);
        out
    }

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        let mut values: Vec<Packet> = Vec::new();
        for v in [
            0i128,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            (1 << 32) - 1,
            1 << 32,
            i128::from(u64::MAX),
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i128::from(i32::MIN),
            i128::from(i32::MIN) - 1,
            i128::from(i64::MIN),
        ] {
            values.push(match i64::try_from(v) {
                Ok(i) => Packet::from(i),
                Err(_) => Packet::from(u64::try_from(v).unwrap()),
            });
        }
        for n in [
            0usize, 1, 2, 4, 8, 15, 16, 17, 31, 32, 255, 256, 65535, 65536,
        ] {
            values.push(Packet::Str("x".repeat(n)));
            values.push(Packet::bin(vec![7u8; n]));
            values.push(Packet::Ext(3, vec![1u8; n].into()));
            values.push(Packet::Array(vec![Packet::Nil; n.min(70000)]));
            values.push(Packet::Map(
                (0..n.min(300))
                    .map(|i| (Packet::from(i as u64), Packet::Bool(true)))
                    .collect(),
            ));
        }
        values.extend([Packet::Nil, Packet::Bool(false), Packet::Float(1.5)]);
        values.push(Packet::Array(values.clone()));
        for p in &values {
            let mut out = Vec::new();
            encode(p, &mut out);
            assert_eq!(encoded_len(p), out.len(), "{p:?}");
        }
    }

    #[test]
    fn integers_use_the_smallest_form() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0xcc, 0x80]);
        assert_eq!(enc(256), [0xcd, 0x01, 0x00]);
        assert_eq!(enc(65536), [0xce, 0, 1, 0, 0]);
        assert_eq!(enc(1u64 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(enc(-1), [0xff]);
        assert_eq!(enc(-32), [0xe0]);
        assert_eq!(enc(-33), [0xd0, 0xdf]);
        assert_eq!(enc(-129), [0xd1, 0xff, 0x7f]);
        assert_eq!(enc(-32769), [0xd2, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(enc(i64::MIN)[0], 0xd3);
        assert_eq!(enc(u64::MAX)[0], 0xcf);
    }

    #[test]
    fn lengths_use_the_smallest_form() {
        assert_eq!(enc("a".repeat(31))[0], 0xbf);
        assert_eq!(enc("a".repeat(32))[..2], [0xd9, 32]);
        assert_eq!(enc("a".repeat(256))[..3], [0xda, 1, 0]);
        assert_eq!(enc(Packet::bin(vec![0; 3]))[..2], [0xc4, 3]);
        assert_eq!(enc(vec![0; 15])[0], 0x9f);
        assert_eq!(enc(vec![0; 16])[..3], [0xdc, 0, 16]);
    }

    #[test]
    fn every_type_round_trips() {
        let value = Packet::Array(vec![
            Packet::Nil,
            true.into(),
            false.into(),
            (-70000).into(),
            u64::MAX.into(),
            i64::MIN.into(),
            3.5.into(),
            "héllo".into(),
            Packet::bin(vec![0, 1, 0xfe, 0xff]),
            Packet::Map(vec![("k".into(), vec![1, 2].into())]),
            Packet::Ext(5, Bytes::from_static(b"abcd")),
            Packet::Ext(-1, Bytes::from(vec![9; 300])),
        ]);
        let bytes = enc(value.clone());
        assert_eq!(decode(&bytes).unwrap(), value);
    }

    #[test]
    fn float32_is_widened() {
        let mut input = vec![0xca];
        input.extend_from_slice(&1.5f32.to_be_bytes());
        assert_eq!(decode(&input).unwrap(), Packet::Float(1.5));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode(&[]), Err(MsgpackError::UnexpectedEnd));
        assert_eq!(decode(&[0xc1]), Err(MsgpackError::InvalidMarker(0xc1)));
        assert_eq!(decode(&[0xa1, 0xff]), Err(MsgpackError::InvalidUtf8));
        assert_eq!(decode(&[0x01, 0x02]), Err(MsgpackError::TrailingBytes(1)));
        // A 4-billion-item array header over a few bytes of input.
        assert_eq!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(MsgpackError::UnexpectedEnd)
        );
        let deep = vec![0x91u8; MAX_DEPTH + 1];
        assert_eq!(decode(&deep), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let bytes = enc(vec![
            Packet::from("abc"),
            70000.into(),
            Packet::bin(vec![1; 40]),
        ]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
