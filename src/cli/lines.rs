//! Bounded line input: stdin read on a thread of its own, one line at a
//! time, never holding more than a bound of one line in memory. A longer
//! line is skipped as it streams past and reported, and reading goes on.

use std::io::{BufRead, ErrorKind};

use tokio::sync::mpsc;

/// The longest input line kept (bytes, without its end of line).
pub const MAX_LINE: usize = 16 << 20;

/// Lines handed over but not yet taken: with [`MAX_LINE`], at most this
/// many times 16 MiB wait in memory.
const QUEUE: usize = 4;

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadLine {
    /// The end of input, with nothing left.
    Eof,
    /// A line, now in the buffer (without `\n` or `\r\n`).
    Line,
    /// A line of `len` bytes, over the bound: skipped, the buffer is empty.
    TooLong {
        /// Its length in bytes (without the end of line).
        len: u64,
    },
}

/// Reads one line into `buf` (cleared first), keeping at most `max` bytes
/// of it: a longer line is consumed without being kept. The last line may
/// lack its `\n`.
///
/// # Errors
/// As the reader's.
pub fn read_line_bounded<R: BufRead + ?Sized>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<ReadLine> {
    buf.clear();
    let mut len: u64 = 0;
    let mut last = None;
    let mut any = false;
    let mut over = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        len += chunk.len() as u64;
        if let Some(&b) = chunk.last() {
            last = Some(b);
        }
        // One byte of slack: a `\r` before the `\n` is not part of the line.
        if !over && buf.len() + chunk.len() > max.saturating_add(1) {
            over = true;
            buf.clear();
        }
        if !over {
            buf.extend_from_slice(chunk);
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if !any {
        return Ok(ReadLine::Eof);
    }
    if last == Some(b'\r') {
        len -= 1;
        if !over {
            buf.pop();
        }
    }
    if over || buf.len() > max {
        buf.clear();
        return Ok(ReadLine::TooLong { len });
    }
    Ok(ReadLine::Line)
}

/// Reads stdin on a plain thread (a blocked read must not hold up
/// shutdown, as a read on tokio's own stdin would): each line as text, or
/// a sentence saying why it was skipped (over [`MAX_LINE`], not UTF-8).
/// A read error is reported and ends the input.
pub fn spawn_stdin_lines() -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        loop {
            let line = match read_line_bounded(&mut stdin, &mut buf, MAX_LINE) {
                Ok(ReadLine::Eof) => break,
                Ok(ReadLine::Line) => String::from_utf8(std::mem::take(&mut buf))
                    .map_err(|_| "input line is not valid UTF-8: ignored".to_owned()),
                Ok(ReadLine::TooLong { len }) => Err(format!(
                    "input line of {len} bytes is longer than the limit of {} MiB: ignored",
                    MAX_LINE >> 20
                )),
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("cannot read stdin: {e}")));
                    break;
                }
            };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn all_lines(input: &[u8], max: usize, chunk: usize) -> Vec<Result<String, u64>> {
        let mut reader = BufReader::with_capacity(chunk, Cursor::new(input.to_vec()));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line_bounded(&mut reader, &mut buf, max).unwrap() {
                ReadLine::Eof => return out,
                ReadLine::Line => out.push(Ok(String::from_utf8(buf.clone()).unwrap())),
                ReadLine::TooLong { len } => out.push(Err(len)),
            }
        }
    }

    #[test]
    fn lines_and_ends_of_line() {
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(
                all_lines(b"a\nbc\r\n\nlast", 10, chunk),
                vec![
                    Ok("a".into()),
                    Ok("bc".into()),
                    Ok(String::new()),
                    Ok("last".into())
                ],
                "chunk {chunk}"
            );
            assert_eq!(all_lines(b"", 10, chunk), vec![]);
            assert_eq!(all_lines(b"\n", 10, chunk), vec![Ok(String::new())]);
        }
    }

    #[test]
    fn long_lines_are_skipped_and_reading_goes_on() {
        for chunk in [1, 4, 5, 64] {
            let input = b"12345\n123456\nok\n1234567890123\r\n12345\r\nend";
            assert_eq!(
                all_lines(input, 5, chunk),
                vec![
                    Ok("12345".into()),
                    Err(6),
                    Ok("ok".into()),
                    Err(13),
                    Ok("12345".into()),
                    Ok("end".into()),
                ],
                "chunk {chunk}"
            );
            // An over-long last line without its end of line.
            assert_eq!(all_lines(b"abcdefgh", 5, chunk), vec![Err(8)]);
            // Exactly the bound plus a \r that is not before a \n.
            assert_eq!(all_lines(b"12345\r", 5, chunk), vec![Ok("12345".into())]);
            assert_eq!(all_lines(b"123456", 5, chunk), vec![Err(6)]);
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut input = vec![b'x'; 1 << 20];
        input.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::with_capacity(4096, Cursor::new(input));
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 1000).unwrap(),
            ReadLine::TooLong { len: 1 << 20 }
        );
        assert!(buf.capacity() < 8192, "kept {} bytes", buf.capacity());
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 1000).unwrap(),
            ReadLine::Line
        );
        assert_eq!(buf, b"short");
    }
}
