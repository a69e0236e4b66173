//! The progress line on stderr.

use std::io::{IsTerminal, Write as _};

/// The progress line on stderr: rewritten in place on a terminal, one line
/// per step otherwise.
pub(super) struct Progress {
    tty: bool,
    step: usize,
    steps: usize,
    title: String,
}

impl Progress {
    pub(super) fn new(steps: usize) -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            step: 0,
            steps,
            title: String::new(),
        }
    }

    pub(super) fn step(&mut self, title: &str) {
        self.step += 1;
        self.title = title.to_owned();
        if self.tty {
            self.draw(title);
        } else {
            eprintln!("[{}/{}] {title}", self.step, self.steps);
        }
    }

    pub(super) fn update(&mut self, detail: &str) {
        if self.tty {
            let line = format!("{}: {detail}", self.title);
            self.draw(&line);
        }
    }

    pub(super) fn draw(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K[{}/{}] {text}", self.step, self.steps);
        let _ = err.flush();
    }

    pub(super) fn finish(&mut self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
