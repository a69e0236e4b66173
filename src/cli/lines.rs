//! Lines of stdin, bounded: a line longer than the bound is never held in
//! memory — the reader keeps at most the bound, discards the rest up to
//! the next newline, and reports the line as too long — and lines waiting
//! to be handled hold at most one bound's worth of bytes between them.
//!
//! Reading runs on a plain thread: a blocked read must not hold up
//! shutdown, as a read on tokio's own stdin would.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::mpsc;

/// The default bound on one input line: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 << 20;

/// What the reader produced.
#[derive(Debug)]
pub enum Input {
    /// One line, without its `\n` (or `\r\n`).
    Line(Line),
    /// A line longer than the bound: skipped. `len` is its length.
    TooLong { len: u64, max: usize },
    /// A line that is not UTF-8: skipped.
    NotUtf8,
    /// Reading failed; nothing more comes.
    Failed(String),
}

impl Input {
    /// The problem with this input, in words, if it is not a line.
    pub fn problem(&self) -> Option<String> {
        match self {
            Input::Line(_) => None,
            Input::TooLong { len, max } => Some(format!(
                "an input line of {len} bytes is longer than the limit of {max} bytes \
                 (--max-line): skipped"
            )),
            Input::NotUtf8 => Some("an input line is not valid UTF-8: skipped".to_owned()),
            Input::Failed(e) => Some(format!("cannot read stdin: {e}")),
        }
    }
}

/// A line of input; its bytes count against the reader's budget until it
/// is dropped.
#[derive(Debug)]
pub struct Line {
    text: String,
    _permit: Permit,
}

impl Line {
    /// The text of the line.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Bytes of lines read but not yet handled.
#[derive(Debug, Default)]
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
}

#[derive(Debug)]
struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl Budget {
    /// Waits until `bytes` fit under `limit` (or nothing is held: a line
    /// of exactly the limit must pass), then takes them.
    fn take(self: &Arc<Self>, bytes: usize, limit: usize) -> Permit {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + bytes > limit {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Permit {
            budget: self.clone(),
            bytes,
        }
    }
}

/// Reads stdin on a thread of its own, line by line, each line at most
/// `max_line` bytes.
pub fn spawn_stdin(max_line: usize) -> mpsc::Receiver<Input> {
    spawn_reader(std::io::stdin(), max_line)
}

/// Reads `source` on a thread of its own (see [`spawn_stdin`]).
pub fn spawn_reader<R: Read + Send + 'static>(source: R, max_line: usize) -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("rs2p-stdin".into())
        .spawn(move || read_lines(source, max_line, &tx))
        .expect("cannot start the input thread");
    rx
}

fn read_lines<R: Read>(source: R, max_line: usize, tx: &mpsc::Sender<Input>) {
    let budget = Arc::new(Budget::default());
    let mut reader = BufReader::with_capacity(64 * 1024, source);
    let mut line: Vec<u8> = Vec::new();
    // Bytes of the current line so far, kept or not.
    let mut len: u64 = 0;
    loop {
        let (chunk_len, newline) = match reader.fill_buf() {
            Ok([]) => {
                if len > 0 {
                    let input = finish(&mut line, len, max_line, &budget);
                    let _ = tx.blocking_send(input);
                }
                return;
            }
            Ok(buf) => {
                let newline = buf.iter().position(|&b| b == b'\n');
                let end = newline.unwrap_or(buf.len());
                let room = (max_line as u64).saturating_sub(len);
                if (end as u64) <= room {
                    line.extend_from_slice(&buf[..end]);
                } else if !line.is_empty() || len == 0 {
                    // Over the bound: stop keeping anything of this line.
                    line = Vec::new();
                }
                len += end as u64;
                (end + usize::from(newline.is_some()), newline.is_some())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Input::Failed(e.to_string()));
                return;
            }
        };
        reader.consume(chunk_len);
        if newline {
            let input = finish(&mut line, len, max_line, &budget);
            len = 0;
            if tx.blocking_send(input).is_err() {
                return;
            }
        }
    }
}

/// The line just ended (`len` bytes, of which `line` kept all or none).
fn finish(line: &mut Vec<u8>, len: u64, max_line: usize, budget: &Arc<Budget>) -> Input {
    let mut bytes = std::mem::take(line);
    if len > max_line as u64 {
        return Input::TooLong { len, max: max_line };
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(text) => {
            let permit = budget.take(text.len(), max_line);
            Input::Line(Line {
                text,
                _permit: permit,
            })
        }
        Err(_) => Input::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], max: usize) -> Vec<String> {
        let mut rx = spawn_reader(std::io::Cursor::new(input.to_vec()), max);
        let mut out = Vec::new();
        while let Some(i) = rx.blocking_recv() {
            out.push(match i {
                Input::Line(l) => format!("line {:?}", l.text()),
                other => other.problem().unwrap(),
            });
        }
        out
    }

    #[test]
    fn lines_and_their_ends() {
        assert_eq!(
            read_all(b"a\nbb\r\n\nlast", 10),
            ["line \"a\"", "line \"bb\"", "line \"\"", "line \"last\""]
        );
        assert!(read_all(b"", 10).is_empty());
    }

    #[test]
    fn long_lines_are_skipped_whole() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend(b"\nexactly10!\n\xff\xfe\nafter");
        let out = read_all(&input, 10);
        assert_eq!(out[0], "line \"ok\"");
        assert!(
            out[1].starts_with("an input line of 200000 bytes is longer than the limit of 10"),
            "{}",
            out[1]
        );
        assert_eq!(out[2], "line \"exactly10!\"");
        assert!(out[3].contains("not valid UTF-8"), "{}", out[3]);
        assert_eq!(out[4], "line \"after\"");
        // A long last line without a newline is reported too.
        let out = read_all(&[b'y'; 50], 10);
        assert!(out[0].contains("50 bytes"), "{out:?}");
    }

    #[test]
    fn waiting_lines_hold_at_most_the_bound() {
        let budget = Arc::new(Budget::default());
        let a = budget.take(6, 10);
        let b = budget.take(4, 10);
        assert_eq!(*budget.used.lock().unwrap(), 10);
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.take(5, 10).bytes)
        };
        drop(a);
        assert_eq!(waiter.join().unwrap(), 5);
        drop(b);
        // An empty budget admits a line of any size up to the bound.
        let c = budget.take(10, 10);
        assert_eq!(c.bytes, 10);
    }
}
