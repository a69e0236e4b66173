//! Subnet (protocol) ids, node ids and request ids.
//!
//! Ids are base58 text. On the wire py2p sends them as msgpack bin and js2p
//! as msgpack str; [`PeerId`] remembers which form a peer used so a node can
//! answer in kind, but compares and hashes by bytes only.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use sha2::{Digest, Sha256, Sha384};

use super::base58;

/// The protocol version string mixed into every subnet id.
pub const PROTOCOL_VERSION: &str = "0.7";

/// A subnet: the pair of a name and a transport ("encryption") name, whose
/// hash is the id that two nodes must share to connect.
///
/// # Examples
/// ```
/// use rs2p::protocol::Protocol;
/// let p = Protocol::new("mesh", "Plaintext");
/// assert_eq!(p.id(), "EpAmyZWv9rZUKmjQgU3FTUD4GrJHvVEXizmghVBc8eGD");
/// assert_eq!(p, Protocol::default());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Protocol {
    subnet: String,
    encryption: String,
    id: String,
}

impl Protocol {
    /// A subnet named `subnet` on the transport `encryption`
    /// (`"Plaintext"`, `"SSL"`, `"ws"` or `"wss"`).
    pub fn new(subnet: impl Into<String>, encryption: impl Into<String>) -> Self {
        let subnet = subnet.into();
        let encryption = encryption.into();
        let mut hasher = Sha256::new();
        hasher.update(subnet.as_bytes());
        hasher.update(encryption.as_bytes());
        hasher.update(PROTOCOL_VERSION.as_bytes());
        let id = base58::encode_be_bytes(&hasher.finalize());
        Protocol {
            subnet,
            encryption,
            id,
        }
    }

    /// The subnet name.
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    /// The transport name.
    pub fn encryption(&self) -> &str {
        &self.encryption
    }

    /// The subnet id: base58 of SHA-256(subnet ‖ encryption ‖ "0.7").
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Default for Protocol {
    /// The mesh default, `("mesh", "Plaintext")`.
    fn default() -> Self {
        Protocol::new("mesh", "Plaintext")
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocol")
            .field("subnet", &self.subnet)
            .field("encryption", &self.encryption)
            .field("id", &self.id)
            .finish()
    }
}

/// How an id travelled in msgpack: as bin (py2p) or as str (js2p).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IdWire {
    /// msgpack bin, as py2p sends ids.
    #[default]
    Bin,
    /// msgpack str, as js2p sends ids.
    Str,
}

/// A node id (or any protocol id) as opaque bytes, with the msgpack form it
/// arrived in. Equality, ordering and hashing look at the bytes only.
///
/// # Examples
/// ```
/// use rs2p::protocol::{IdWire, PeerId};
/// let a = PeerId::new("abc", IdWire::Bin);
/// let b = PeerId::new("abc", IdWire::Str);
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "abc");
/// ```
#[derive(Clone)]
pub struct PeerId {
    bytes: Bytes,
    wire: IdWire,
}

impl PeerId {
    /// An id with these bytes, to be sent in the given form.
    pub fn new(bytes: impl Into<Bytes>, wire: IdWire) -> Self {
        PeerId {
            bytes: bytes.into(),
            wire,
        }
    }

    /// Derives a node id as the references do:
    /// base58(SHA-384(out_addr_text ‖ protocol_id ‖ user_salt)).
    /// `out_addr_text` is usually [`py2p_addr_text`]; `user_salt` a UUID4
    /// string (see [`uuid4_text`]).
    ///
    /// # Examples
    /// ```
    /// use rs2p::protocol::{py2p_addr_text, PeerId, Protocol};
    /// let proto = Protocol::default();
    /// let id = PeerId::derive(&py2p_addr_text("127.0.0.1", 4444), proto.id(),
    ///     "00000000-0000-4000-8000-000000000000");
    /// assert!(id.to_string().starts_with("7g4Ru6i6"));
    /// ```
    pub fn derive(out_addr_text: &str, protocol_id: &str, user_salt: &str) -> Self {
        let mut hasher = Sha384::new();
        hasher.update(out_addr_text.as_bytes());
        hasher.update(protocol_id.as_bytes());
        hasher.update(user_salt.as_bytes());
        let text = base58::encode_be_bytes(&hasher.finalize());
        PeerId::new(text.into_bytes(), IdWire::Bin)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The id's bytes, shared.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The msgpack form this id is sent in.
    pub fn wire(&self) -> IdWire {
        self.wire
    }

    /// The same id, to be sent in another form.
    pub fn with_wire(&self, wire: IdWire) -> Self {
        PeerId {
            bytes: self.bytes.clone(),
            wire,
        }
    }

    /// The first `n` characters, for logs and the command line.
    pub fn short(&self, n: usize) -> String {
        self.to_string().chars().take(n).collect()
    }
}

impl PartialEq for PeerId {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PeerId {}

impl Hash for PeerId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

impl PartialOrd for PeerId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PeerId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short(12))
    }
}

impl From<&str> for PeerId {
    fn from(text: &str) -> Self {
        PeerId::new(Bytes::copy_from_slice(text.as_bytes()), IdWire::Bin)
    }
}

impl From<String> for PeerId {
    fn from(text: String) -> Self {
        PeerId::new(text.into_bytes(), IdWire::Bin)
    }
}

/// The text py2p hashes for an outward address: a Python tuple repr such as
/// `('127.0.0.1', 4444)`.
pub fn py2p_addr_text(host: &str, port: u16) -> String {
    format!("('{host}', {port})")
}

/// Formats 16 random bytes as a version-4 UUID string, the per-process salt
/// of node ids.
///
/// # Examples
/// ```
/// let salt = rs2p::protocol::uuid4_text([0u8; 16]);
/// assert_eq!(salt, "00000000-0000-4000-8000-000000000000");
/// ```
pub fn uuid4_text(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A route-request id: base58(SHA-384(target_id ‖ base58(now))).
///
/// # Examples
/// ```
/// let a = rs2p::protocol::request_id(b"target", 1_700_000_000);
/// let b = rs2p::protocol::request_id(b"target", 1_700_000_001);
/// assert_ne!(a, b);
/// ```
pub fn request_id(target_id: &[u8], now: u64) -> String {
    let mut hasher = Sha384::new();
    hasher.update(target_id);
    hasher.update(base58::encode_u128(u128::from(now)).as_bytes());
    base58::encode_be_bytes(&hasher.finalize())
}
