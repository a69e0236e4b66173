//! Base58 of unsigned integers, as protocol 0.7 uses it.
//!
//! The protocol applies the Bitcoin alphabet to an unsigned **integer**, not
//! to a byte string: leading zero bytes carry no meaning, nothing is padded
//! with `'1'`, and zero encodes as `"1"`.

/// The Bitcoin base58 alphabet.
pub const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Encodes the unsigned integer whose big-endian bytes are `be_bytes`.
///
/// # Examples
/// ```
/// use rs2p::protocol::base58;
/// assert_eq!(base58::encode_be_bytes(&[]), "1");
/// assert_eq!(base58::encode_be_bytes(&[0, 0, 58]), "21");
/// ```
pub fn encode_be_bytes(be_bytes: &[u8]) -> String {
    let start = be_bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(be_bytes.len());
    let mut number: Vec<u8> = be_bytes[start..].to_vec();
    // Each base58 digit carries log2(58) ≈ 5.858 bits; 138/100 digits per byte
    // is an upper bound.
    let mut digits: Vec<u8> = Vec::with_capacity(number.len() * 138 / 100 + 1);
    while !number.is_empty() {
        // Long division of `number` by 58, in place.
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 58) as u8;
            remainder = acc % 58;
        }
        digits.push(ALPHABET[remainder as usize]);
        let leading = number.iter().position(|&b| b != 0).unwrap_or(number.len());
        number.drain(..leading);
    }
    if digits.is_empty() {
        digits.push(ALPHABET[0]);
    }
    digits.reverse();
    // Every byte pushed comes from ALPHABET, which is ASCII.
    digits.into_iter().map(char::from).collect()
}

/// Encodes an unsigned 128-bit integer (enough for timestamps and counters).
///
/// # Examples
/// ```
/// assert_eq!(rs2p::protocol::base58::encode_u128(57), "z");
/// ```
pub fn encode_u128(value: u128) -> String {
    encode_be_bytes(&value.to_be_bytes())
}

/// Decodes base58 text back into the big-endian bytes of its integer,
/// without leading zero bytes (zero decodes to an empty vector). Returns
/// `None` when `text` is empty or holds a character outside the alphabet.
///
/// # Examples
/// ```
/// use rs2p::protocol::base58;
/// assert_eq!(base58::decode_to_be_bytes("21"), Some(vec![58]));
/// assert_eq!(base58::decode_to_be_bytes("0OIl"), None);
/// ```
pub fn decode_to_be_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    let mut number: Vec<u8> = Vec::new(); // little-endian while we build it
    for ch in text.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == ch)? as u32;
        let mut carry = digit;
        for byte in number.iter_mut() {
            let acc = u32::from(*byte) * 58 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        while carry > 0 {
            number.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    number.reverse();
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values() {
        assert_eq!(encode_u128(0), "1");
        assert_eq!(encode_u128(1), "2");
        assert_eq!(encode_u128(57), "z");
        assert_eq!(encode_u128(58), "21");
        assert_eq!(encode_u128(58 * 58), "211");
    }

    #[test]
    fn leading_zero_bytes_do_not_pad() {
        assert_eq!(encode_be_bytes(&[0, 0, 0, 1]), "2");
        assert_eq!(encode_be_bytes(&[0, 0]), "1");
    }

    #[test]
    fn decode_inverts_encode() {
        for v in [0u128, 1, 57, 58, 255, 256, 1 << 64, u128::MAX] {
            let text = encode_u128(v);
            let bytes = decode_to_be_bytes(&text).unwrap();
            let mut padded = [0u8; 16];
            padded[16 - bytes.len()..].copy_from_slice(&bytes);
            assert_eq!(u128::from_be_bytes(padded), v, "{text}");
        }
    }
}
