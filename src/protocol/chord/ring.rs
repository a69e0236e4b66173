//! The ring: 384-bit positions, the clockwise distance, the five hashes of
//! a key and their base58 wire form.

use std::fmt;

use bytes::Bytes;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::protocol::{base58, IdWire, Packet, PeerId};

/// Bytes of a ring position: the ring has 2^384 positions.
const POS_BYTES: usize = 48;

/// Longest hash accepted from a peer, in big-endian bytes (sha512 needs 64;
/// anything longer is refused before it is decoded further).
const MAX_HASH_BYTES: usize = 64;

/// Longest base58 text accepted for a hash (64 bytes need at most 88
/// digits).
const MAX_HASH_TEXT: usize = 96;

/// A point on the ring, an integer modulo 2^384, as six big-endian 64-bit
/// limbs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position([u64; 6]);

impl Position {
    /// The position of an integer given by its big-endian bytes (of any
    /// length), reduced modulo 2^384.
    pub fn from_be_bytes(be: &[u8]) -> Self {
        let mut full = [0u8; POS_BYTES];
        let take = be.len().min(POS_BYTES);
        full[POS_BYTES - take..].copy_from_slice(&be[be.len() - take..]);
        let mut limbs = [0u64; 6];
        for (limb, chunk) in limbs.iter_mut().zip(full.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_be_bytes(b);
        }
        Position(limbs)
    }

    /// A node's position: its id base58-decoded to an integer (`None` when
    /// the id is not base58 text; such a node never stores).
    pub fn of_id(id: &PeerId) -> Option<Self> {
        let text = std::str::from_utf8(id.as_bytes()).ok()?;
        if text.len() > MAX_HASH_TEXT {
            return None;
        }
        base58::decode_to_be_bytes(text).map(|be| Position::from_be_bytes(&be))
    }

    /// `(to - self) mod 2^384`: how far clockwise `to` lies from `self`.
    pub fn distance_to(&self, to: &Position) -> Position {
        let mut out = [0u64; 6];
        let mut borrow = false;
        for i in (0..6).rev() {
            let (d, b1) = to.0[i].overflowing_sub(self.0[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            out[i] = d;
            borrow = b1 || b2;
        }
        Position(out)
    }

    /// The big-endian bytes (48).
    pub fn to_be_bytes(&self) -> [u8; POS_BYTES] {
        let mut out = [0u8; POS_BYTES];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = base58::encode_be_bytes(&self.to_be_bytes());
        write!(f, "Position({})", text.chars().take(10).collect::<String>())
    }
}

/// `distance(a, b)` of the references: `(b - a) mod 2^384`.
pub fn distance(a: &Position, b: &Position) -> Position {
    a.distance_to(b)
}

/// One of the five hash tables every key is stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// sha1, shifted 224 bits left.
    Sha1,
    /// sha224, shifted 160 bits left.
    Sha224,
    /// sha256, shifted 128 bits left.
    Sha256,
    /// sha384, as is.
    Sha384,
    /// sha512, as is (512 bits; reduced modulo 2^384 only on the ring).
    Sha512,
}

impl Method {
    /// The five tables, in the references' order.
    pub const ALL: [Method; 5] = [
        Method::Sha1,
        Method::Sha224,
        Method::Sha256,
        Method::Sha384,
        Method::Sha512,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sha1 => "sha1",
            Method::Sha224 => "sha224",
            Method::Sha256 => "sha256",
            Method::Sha384 => "sha384",
            Method::Sha512 => "sha512",
        }
    }

    /// The method a name (str or bin packet) stands for.
    pub fn from_packet(packet: &Packet) -> Option<Method> {
        let name = packet.as_bytes()?;
        Method::ALL
            .into_iter()
            .find(|m| m.name().as_bytes() == name)
    }

    /// The name as a packet in the form a peer uses (bin for py2p, str for
    /// js2p).
    pub fn to_packet(self, wire: IdWire) -> Packet {
        match wire {
            IdWire::Bin => Packet::bin(Bytes::from_static(self.name().as_bytes())),
            IdWire::Str => Packet::from(self.name()),
        }
    }

    /// This table's hash of `key`, as the integer's big-endian bytes
    /// (shifted as the references shift it).
    pub fn hash(self, key: &[u8]) -> Vec<u8> {
        // Shifting left by whole bytes is appending zero bytes.
        let (digest, shift): (Vec<u8>, usize) = match self {
            Method::Sha1 => (Sha1::digest(key).to_vec(), 28),
            Method::Sha224 => (Sha224::digest(key).to_vec(), 20),
            Method::Sha256 => (Sha256::digest(key).to_vec(), 16),
            Method::Sha384 => (Sha384::digest(key).to_vec(), 0),
            Method::Sha512 => (Sha512::digest(key).to_vec(), 0),
        };
        let mut be = digest;
        be.resize(be.len() + shift, 0);
        trim(be)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Big-endian bytes without leading zeros (zero is empty).
fn trim(mut be: Vec<u8>) -> Vec<u8> {
    let lead = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    be.drain(..lead);
    be
}

/// Where a value lives: a table and the hash (an integer, as the
/// references key their tables; equal integers are equal keys whatever
/// their base58 spelling).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The table.
    pub method: Method,
    /// The hash's big-endian bytes, without leading zeros.
    hash: Bytes,
}

impl Slot {
    /// The slot of `key` in table `method`.
    pub fn of_key(method: Method, key: &[u8]) -> Self {
        Slot {
            method,
            hash: Bytes::from(method.hash(key)),
        }
    }

    /// The five slots of a key, in table order.
    pub fn all_of(key: &[u8]) -> [Slot; 5] {
        Method::ALL.map(|m| Slot::of_key(m, key))
    }

    /// A slot from the wire: `method` and base58 `hash` as str or bin.
    /// `None` for an unknown method, text that is not base58, or a hash
    /// over 512 bits.
    pub fn from_packets(method: &Packet, hash: &Packet) -> Option<Self> {
        let method = Method::from_packet(method)?;
        let text = std::str::from_utf8(hash.as_bytes()?).ok()?;
        if text.len() > MAX_HASH_TEXT {
            return None;
        }
        let be = base58::decode_to_be_bytes(text)?;
        if be.len() > MAX_HASH_BYTES {
            return None;
        }
        Some(Slot {
            method,
            hash: Bytes::from(be),
        })
    }

    /// The hash's base58 text, as the wire carries it.
    pub fn hash_text(&self) -> String {
        base58::encode_be_bytes(&self.hash)
    }

    /// The hash as a packet in the form a peer uses.
    pub fn hash_packet(&self, wire: IdWire) -> Packet {
        let text = self.hash_text();
        match wire {
            IdWire::Bin => Packet::bin(Bytes::from(text.into_bytes())),
            IdWire::Str => Packet::from(text),
        }
    }

    /// Where on the ring the slot falls (the hash modulo 2^384).
    pub fn position(&self) -> Position {
        Position::from_be_bytes(&self.hash)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.hash_text();
        write!(
            f,
            "{}:{}",
            self.method,
            text.chars().take(10).collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_hashes_of_test_match_the_references() {
        let want = [
            "7DBXKb5TYkrd5skvuyqPy83p2TG6zyudMemvR7cDum4H3QWsU9wPoSm4B9b3A6opST",
            "6JjbxX3LAiCtTQz1wowsSdWUjZbEQqgAwUd1P4g9fPtKA2U8gPStvvuKqu4wC1bqPM",
            "6rQZuc7TUsJisSjiJG1VSAS9yyu6T1x7ESqijmwdadWW3h2hd8P2B4LqXb14WjTsVH",
            "5M9rGWWh3UmHpU4bGXf47Bxav14ZWfFJJvLroxrk2XgJAzW2P5sGzWpRSkWywbjazk",
            "5mAN4LS8t6YxHNJ9MkxEKivJXv287BsXEdPd8UBgsReG1ALx5RfqaRQLRP3Jpr5xsHAcYhixyVFggBKcaucdPq6E",
        ];
        for (slot, want) in Slot::all_of(b"test").iter().zip(want) {
            assert_eq!(slot.hash_text(), want, "{}", slot.method);
            let back = Slot::from_packets(&slot.method.name().into(), &want.into());
            assert_eq!(back.as_ref(), Some(slot));
        }
    }

    #[test]
    fn distance_wraps_around_the_ring() {
        let a = Position::from_be_bytes(&[5]);
        let b = Position::from_be_bytes(&[3]);
        assert_eq!(a.distance_to(&a), Position::default());
        assert_eq!(b.distance_to(&a), Position::from_be_bytes(&[2]));
        // 3 - 5 mod 2^384 = 2^384 - 2: all ones but the last bit.
        let mut max = [0xffu8; 48];
        max[47] = 0xfe;
        assert_eq!(a.distance_to(&b), Position::from_be_bytes(&max));
        // A 512-bit hash falls on its low 384 bits.
        let mut long = vec![0xAB; 16];
        long.extend([0u8; 47]);
        long.push(7);
        assert_eq!(
            Position::from_be_bytes(&long),
            Position::from_be_bytes(&[7])
        );
    }

    #[test]
    fn odd_wire_slots_are_refused() {
        let m = Packet::from("sha1");
        assert!(Slot::from_packets(&"md5".into(), &"21".into()).is_none());
        assert!(Slot::from_packets(&m, &"0OIl".into()).is_none());
        assert!(Slot::from_packets(&m, &Packet::from(5u64)).is_none());
        assert!(Slot::from_packets(&m, &"z".repeat(200).as_str().into()).is_none());
        assert!(Slot::from_packets(&Packet::bin(&b"sha1"[..]), &Packet::bin(&b"21"[..])).is_some());
    }
}
