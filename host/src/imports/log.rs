//! The host side of the `log` import, and of guest stdout/stderr.
//!
//! Where it sits: the runtime's host functions hand each `log.log` of a guest
//! to [`GuestLog::write`], and the captured stdout and stderr of a call to
//! [`GuestLog::write_stream`]. Every line becomes a host log line tagged with
//! the destination, within a cap per call.

/// Severity of a guest log line (the WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something went wrong, the destination carries on.
    Warn,
    /// Something failed.
    Error,
}

/// Most log lines one call into a guest may write; the rest are counted and dropped.
pub const MAX_LINES_PER_CALL: u32 = 200;

/// Most characters kept of one guest log line.
const MAX_LINE_CHARS: usize = 2_000;

/// Log lines of one call into one destination.
#[derive(Debug)]
pub struct GuestLog {
    /// Destination name, the tag on every line.
    destination: std::sync::Arc<str>,
    /// The transformation's name when the guest is one of the destination's
    /// transformations (a second tag).
    transform: Option<std::sync::Arc<str>>,
    /// Lines written so far in this call.
    written: u32,
    /// Lines dropped because of the cap.
    dropped: u32,
}

impl GuestLog {
    /// A fresh log for one call of `destination`'s component, or of its
    /// `transform`.
    pub fn new(destination: std::sync::Arc<str>, transform: Option<std::sync::Arc<str>>) -> Self {
        Self {
            destination,
            transform,
            written: 0,
            dropped: 0,
        }
    }

    /// Write one line at `level`.
    pub fn write(&mut self, level: Level, message: &str) {
        if self.written >= MAX_LINES_PER_CALL {
            self.dropped += 1;
            return;
        }
        self.written += 1;
        // A guest's line stays one line, and cannot drive a terminal.
        let message = escape_line(truncate(message, MAX_LINE_CHARS), false);
        let destination = &*self.destination;
        if let Some(transform) = self.transform.as_deref() {
            match level {
                Level::Debug => tracing::debug!(destination, transform, "guest: {message}"),
                Level::Info => tracing::info!(destination, transform, "guest: {message}"),
                Level::Warn => tracing::warn!(destination, transform, "guest: {message}"),
                Level::Error => tracing::error!(destination, transform, "guest: {message}"),
            }
            return;
        }
        match level {
            Level::Debug => tracing::debug!(destination, "guest: {message}"),
            Level::Info => tracing::info!(destination, "guest: {message}"),
            Level::Warn => tracing::warn!(destination, "guest: {message}"),
            Level::Error => tracing::error!(destination, "guest: {message}"),
        }
    }

    /// Captured stdout or stderr, one log line per text line.
    pub fn write_stream(&mut self, stream: &str, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let level = if stream == "stderr" {
                Level::Warn
            } else {
                Level::Info
            };
            self.write(level, &format!("[{stream}] {line}"));
        }
    }

    /// Lines dropped by the cap in this call.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                destination = &*self.destination,
                "guest log capped: {} lines dropped",
                self.dropped
            );
        }
    }
}

/// `text` with every control character escaped but tabs, a final line break,
/// and (with `ansi`) escape characters.
pub fn escape_line(text: &str, ansi: bool) -> String {
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text, ""),
    };
    if !body
        .chars()
        .any(|c| c.is_control() && c != '\t' && !(ansi && c == '\u{1b}'))
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in body.chars() {
        match c {
            '\t' => out.push(c),
            '\u{1b}' if ansi => out.push(c),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
