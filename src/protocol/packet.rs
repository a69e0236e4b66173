//! [`Packet`]: one msgpack value, with str and bin kept apart.
//!
//! Users build packets with `From` conversions (`"hi".into()`, `42.into()`,
//! `Packet::bin(..)`, `vec![..].into()`) or the [`packets!`](crate::packets)
//! macro, and read them with the `as_*` accessors.

use std::fmt;

use bytes::Bytes;

/// An integer that msgpack can carry: from −2⁶³ to 2⁶⁴−1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Int(i128);

impl Int {
    /// The value, if it fits an `i64`.
    pub fn as_i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// The value, if it fits a `u64` (that is, it is not negative).
    pub fn as_u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    /// The value, widened.
    pub fn as_i128(self) -> i128 {
        self.0
    }
}

impl Int {
    /// Wraps a value the caller knows to lie within msgpack's range.
    pub(crate) fn from_i128_unchecked(v: i128) -> Int {
        Int(v)
    }
}

impl fmt::Debug for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Int {
            fn from(v: $t) -> Self { Int(v as i128) }
        }
        impl From<$t> for Packet {
            fn from(v: $t) -> Self { Packet::Int(Int(v as i128)) }
        }
    )*};
}
int_from!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// One msgpack value.
///
/// `Str` and `Bin` stay distinct, because the peers of this protocol tell
/// them apart; [`Packet::as_bytes`] reads either. `Debug` shows the length
/// of strings and byte strings longer than 64 bytes, not their contents.
#[derive(Clone, PartialEq)]
pub enum Packet {
    /// msgpack nil.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(Int),
    /// A float (float32 values are widened when decoded).
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string.
    Bin(Bytes),
    /// An array of values.
    Array(Vec<Packet>),
    /// A map, in wire order.
    Map(Vec<(Packet, Packet)>),
    /// An extension value: a type tag and its data.
    Ext(i8, Bytes),
}

impl Packet {
    /// A bin packet holding these bytes.
    pub fn bin(bytes: impl Into<Bytes>) -> Packet {
        Packet::Bin(bytes.into())
    }

    /// The text of a str packet.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Packet::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a str **or** bin packet.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Packet::Str(s) => Some(s.as_bytes()),
            Packet::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an integer packet that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Packet::Int(i) => i.as_i64(),
            _ => None,
        }
    }

    /// The value of a non-negative integer packet.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Packet::Int(i) => i.as_u64(),
            _ => None,
        }
    }

    /// The value of a float packet, or of an integer packet as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Packet::Float(f) => Some(*f),
            Packet::Int(i) => Some(i.as_i128() as f64),
            _ => None,
        }
    }

    /// The value of a bool packet.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Packet::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of an array packet.
    pub fn as_array(&self) -> Option<&[Packet]> {
        match self {
            Packet::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The entries of a map packet.
    pub fn as_map(&self) -> Option<&[(Packet, Packet)]> {
        match self {
            Packet::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Whether this is nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Packet::Nil)
    }
}

const DEBUG_INLINE_MAX: usize = 64;

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Nil => f.write_str("nil"),
            Packet::Bool(b) => write!(f, "{b}"),
            Packet::Int(i) => write!(f, "{i}"),
            Packet::Float(x) => write!(f, "{x:?}"),
            Packet::Str(s) if s.len() <= DEBUG_INLINE_MAX => write!(f, "{s:?}"),
            Packet::Str(s) => write!(f, "str({} bytes)", s.len()),
            Packet::Bin(b) if b.len() <= DEBUG_INLINE_MAX => {
                f.write_str("b\"")?;
                for byte in b.iter() {
                    write!(f, "{}", std::ascii::escape_default(*byte))?;
                }
                f.write_str("\"")
            }
            Packet::Bin(b) => write!(f, "bin({} bytes)", b.len()),
            Packet::Array(items) => f.debug_list().entries(items).finish(),
            Packet::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (k, v)))
                .finish(),
            Packet::Ext(kind, data) => write!(f, "ext({kind}, {} bytes)", data.len()),
        }
    }
}

impl From<bool> for Packet {
    fn from(v: bool) -> Self {
        Packet::Bool(v)
    }
}

impl From<f64> for Packet {
    fn from(v: f64) -> Self {
        Packet::Float(v)
    }
}

impl From<f32> for Packet {
    fn from(v: f32) -> Self {
        Packet::Float(f64::from(v))
    }
}

impl From<&str> for Packet {
    fn from(v: &str) -> Self {
        Packet::Str(v.to_owned())
    }
}

impl From<String> for Packet {
    fn from(v: String) -> Self {
        Packet::Str(v)
    }
}

impl From<&String> for Packet {
    fn from(v: &String) -> Self {
        Packet::Str(v.clone())
    }
}

impl From<Bytes> for Packet {
    fn from(v: Bytes) -> Self {
        Packet::Bin(v)
    }
}

impl From<&[u8]> for Packet {
    fn from(v: &[u8]) -> Self {
        Packet::Bin(Bytes::copy_from_slice(v))
    }
}

impl<const N: usize> From<&[u8; N]> for Packet {
    fn from(v: &[u8; N]) -> Self {
        Packet::Bin(Bytes::copy_from_slice(v))
    }
}

impl From<Int> for Packet {
    fn from(v: Int) -> Self {
        Packet::Int(v)
    }
}

impl<T: Into<Packet>> From<Vec<T>> for Packet {
    fn from(v: Vec<T>) -> Self {
        Packet::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Packet>> From<Option<T>> for Packet {
    fn from(v: Option<T>) -> Self {
        v.map_or(Packet::Nil, Into::into)
    }
}

impl From<()> for Packet {
    fn from(_: ()) -> Self {
        Packet::Nil
    }
}

/// Builds a `Vec<Packet>` from values of mixed types.
///
/// # Examples
/// ```
/// use rs2p::{packets, Packet};
/// let p = packets!["hello", 42, true, Packet::bin(&b"\x00\x01"[..])];
/// assert_eq!(p.len(), 4);
/// assert_eq!(p[0].as_str(), Some("hello"));
/// ```
#[macro_export]
macro_rules! packets {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::Packet::from($value)),*]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        assert_eq!(Packet::from("x").as_bytes(), Some(&b"x"[..]));
        assert_eq!(Packet::bin(&b"x"[..]).as_bytes(), Some(&b"x"[..]));
        assert_eq!(Packet::bin(&b"x"[..]).as_str(), None);
        assert_eq!(Packet::from(-5).as_i64(), Some(-5));
        assert_eq!(Packet::from(-5).as_u64(), None);
        assert_eq!(Packet::from(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(Packet::from(u64::MAX).as_i64(), None);
        assert_eq!(Packet::from(Some(1)), Packet::from(1));
        assert!(Packet::from(None::<i32>).is_nil());
        assert_ne!(Packet::from("ab"), Packet::bin(&b"ab"[..]));
    }

    #[test]
    fn debug_hides_long_contents() {
        let long = Packet::from("x".repeat(1000));
        assert_eq!(format!("{long:?}"), "str(1000 bytes)");
        let long = Packet::bin(vec![0u8; 100]);
        assert_eq!(format!("{long:?}"), "bin(100 bytes)");
        assert_eq!(format!("{:?}", Packet::bin(&b"a\x00"[..])), "b\"a\\x00\"");
    }
}
