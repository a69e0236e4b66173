//! The five compression methods of protocol 0.7, with bounded decompression.
//!
//! Every decompressor stops as soon as its output would exceed the limit it
//! is given, so a small "bomb" cannot make the node allocate gigabytes.

use std::io::{Read, Write};

use super::error::CodecError;
use super::flags::Compression;

/// Memory the xz decoder may use (enough for every `lzma` preset up to 9
/// with its 64 MiB dictionary is more than we allow; py2p's default preset 6
/// needs about 9 MiB).
pub const LZMA_MEMLIMIT: u64 = 32 * 1024 * 1024;

/// Compresses `data` with `method`, in the format the references read.
///
/// # Examples
/// ```
/// use rs2p::protocol::{compression, Compression};
/// let data = b"abcabcabcabcabcabcabcabcabcabc".repeat(10);
/// for method in Compression::ALL {
///     let packed = compression::compress(method, &data);
///     assert!(packed.len() < data.len());
///     assert_eq!(compression::decompress(method, &packed, 1 << 20).unwrap(), data);
/// }
/// ```
pub fn compress(method: Compression, data: &[u8]) -> Vec<u8> {
    match method {
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .unwrap_or_else(|_| unreachable_snappy(data)),
        Compression::Zlib => zlib(data),
        Compression::Gzip => gzip(data),
        Compression::Bz2 => {
            // The block size only matters past 100 kB; a small one saves the
            // encoder several megabytes of tables per call.
            let level = (data.len() / 100_000 + 1).clamp(1, 9) as u32;
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
            write_all_infallible(&mut enc, data);
            enc.finish().unwrap_or_default()
        }
        Compression::Lzma => {
            // Smallest preset whose dictionary covers the input.
            let preset = match data.len() {
                0..=262_144 => 0,
                262_145..=1_048_576 => 1,
                1_048_577..=2_097_152 => 2,
                2_097_153..=4_194_304 => 3,
                _ => 6,
            };
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), preset);
            write_all_infallible(&mut enc, data);
            enc.finish().unwrap_or_default()
        }
    }
}

/// Bodies up to this size go into a stored (uncompressed) deflate block:
/// deflate cannot make them smaller (a 130-byte body comes out at 141
/// bytes either way), and framing them costs a copy instead of a
/// compressor's set-up.
const STORED_MAX: usize = 256;

thread_local! {
    /// One deflate compressor per thread, reset for each body: building one
    /// costs more than compressing a small body (8 k/s fresh, ~190 k/s
    /// reused, for 16-byte payloads).
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::default(), false));
}

/// Raw deflate (RFC 1951) of `data`, appended to `out`.
fn deflate_into(data: &[u8], out: &mut Vec<u8>) {
    if data.len() <= STORED_MAX {
        // One final stored block: BFINAL=1, BTYPE=00, LEN, NLEN.
        let len = data.len() as u16;
        out.push(0x01);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(data);
        return;
    }
    DEFLATE.with(|cell| {
        let mut c = cell.borrow_mut();
        c.reset();
        // Enough room for the worst case (stored blocks) in one call.
        out.reserve(data.len() + data.len() / 1000 * 5 + 64);
        let start_in = c.total_in();
        loop {
            let consumed = (c.total_in() - start_in) as usize;
            let status = c
                .compress_vec(&data[consumed..], out, flate2::FlushCompress::Finish)
                .unwrap_or(flate2::Status::StreamEnd);
            if status == flate2::Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
    });
}

/// The zlib format (RFC 1950): header, raw deflate, Adler-32.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    // CMF: deflate, 32 KiB window; FLG: default level, check bits.
    out.extend_from_slice(&[0x78, 0x9c]);
    deflate_into(data, &mut out);
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// The gzip format (RFC 1952): header (no name, no time, unknown OS), raw
/// deflate, CRC-32 and length.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
    deflate_into(data, &mut out);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Adler-32 (RFC 1950 §8.2).
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5,552 bytes is the most that cannot overflow before the modulo.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Snappy's raw encoder fails only for inputs over ~4 GiB, which no frame
/// can carry; fall back to an empty body that every peer will reject.
fn unreachable_snappy(_data: &[u8]) -> Vec<u8> {
    Vec::new()
}

/// Writing into a `Vec` through an encoder cannot fail for I/O reasons.
fn write_all_infallible(w: &mut impl Write, data: &[u8]) {
    let _ = w.write_all(data);
}

/// Decompresses `data`, which claims to be in `method`'s format, producing
/// at most `max_len` bytes.
///
/// zlib and gzip are each read with the other as a fallback, as py2p does.
///
/// # Errors
/// [`CodecError::DecompressedTooLarge`] if the output would exceed
/// `max_len`; [`CodecError::Decompress`] if `data` is not valid.
pub fn decompress(method: Compression, data: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
    match method {
        Compression::Snappy => {
            let claimed = snap::raw::decompress_len(data).map_err(|e| fail(method, e))?;
            if claimed > max_len {
                return Err(CodecError::DecompressedTooLarge {
                    method,
                    max: max_len,
                });
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| fail(method, e))
        }
        Compression::Zlib | Compression::Gzip => {
            let zlib = |d: &[u8]| read_bounded(method, flate2::read::ZlibDecoder::new(d), max_len);
            let gzip =
                |d: &[u8]| read_bounded(method, flate2::read::MultiGzDecoder::new(d), max_len);
            let looks_gzip = data.starts_with(&[0x1f, 0x8b]);
            if looks_gzip {
                gzip(data)
            } else {
                zlib(data)
            }
        }
        Compression::Bz2 => read_bounded(method, bzip2::read::MultiBzDecoder::new(data), max_len),
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_auto_decoder(
                LZMA_MEMLIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| fail(method, e))?;
            read_bounded(
                method,
                liblzma::read::XzDecoder::new_stream(data, stream),
                max_len,
            )
        }
    }
}

fn fail(method: Compression, e: impl std::fmt::Display) -> CodecError {
    CodecError::Decompress {
        method,
        reason: e.to_string(),
    }
}

fn read_bounded(
    method: Compression,
    reader: impl Read,
    max_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| fail(method, e))?;
    if out.len() > max_len {
        return Err(CodecError::DecompressedTooLarge {
            method,
            max: max_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_and_gzip_read_each_other() {
        let data = b"hello hello hello hello".to_vec();
        let z = compress(Compression::Zlib, &data);
        let g = compress(Compression::Gzip, &data);
        assert_eq!(decompress(Compression::Gzip, &z, 100).unwrap(), data);
        assert_eq!(decompress(Compression::Zlib, &g, 100).unwrap(), data);
    }

    #[test]
    fn zlib_and_gzip_round_trip_at_every_size() {
        // Stored blocks below STORED_MAX, deflate above; empty included.
        for len in [0, 1, 16, 130, 255, 256, 257, 1000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for method in [Compression::Zlib, Compression::Gzip] {
                let packed = compress(method, &data);
                assert_eq!(
                    decompress(method, &packed, 1 << 20).unwrap(),
                    data,
                    "{method} {len}"
                );
            }
        }
        // The checksums are the standard ones: flate2's own decoders agree.
        let mut read = Vec::new();
        flate2::read::ZlibDecoder::new(&compress(Compression::Zlib, b"Wikipedia")[..])
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, b"Wikipedia");
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn bombs_are_refused() {
        let data = vec![0u8; 1 << 20];
        for method in Compression::ALL {
            let packed = compress(method, &data);
            assert!(packed.len() < 60_000, "{method} did not compress");
            assert_eq!(
                decompress(method, &packed, 1000),
                Err(CodecError::DecompressedTooLarge { method, max: 1000 }),
                "{method}"
            );
            assert_eq!(decompress(method, &packed, 1 << 20).unwrap().len(), 1 << 20);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for method in Compression::ALL {
            for garbage in [
                &b""[..],
                b"\x00",
                b"\xff\xff\xff\xff\xff",
                b"not compressed at all",
            ] {
                let _ = decompress(method, garbage, 1000);
            }
            assert!(decompress(method, b"\x1f\x8b\x08garbage-garbage", 1000).is_err());
        }
    }
}
