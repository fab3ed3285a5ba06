//! Live state on stderr: one line rewritten in place on a terminal, timestamped lines
//! otherwise (CI logs), printed only when the states change.

use std::io::{IsTerminal, Write};

use crate::util::timestamp;

pub struct Progress {
    tty: bool,
    last: String,
    /// Without a terminal a line is printed only when this changes (not on every tick).
    last_key: String,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
            last_key: String::new(),
            quiet,
        }
    }
    pub fn show(&mut self, line: &str) {
        self.show_keyed(line, line);
    }
    /// `key` is the line without its clock, so plain output changes only with the states.
    pub fn show_keyed(&mut self, key: &str, line: &str) {
        if self.quiet || line == self.last || (!self.tty && key == self.last_key) {
            return;
        }
        self.last = line.to_string();
        self.last_key = key.to_string();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "[{}] {line}", timestamp());
        }
        let _ = err.flush();
    }
    pub fn done(&mut self) {
        if self.tty && !self.quiet && !self.last.is_empty() {
            let _ = writeln!(std::io::stderr());
        }
        self.last.clear();
        self.last_key.clear();
    }
}
