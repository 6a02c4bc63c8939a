//! The host side of the `log` import, and of guest stdout/stderr.

use crate::runtime::bindings::switchyard::destination::log::Level;

/// Most log lines one call into a guest may write; the rest are counted and dropped.
pub const MAX_LINES_PER_CALL: u32 = 200;

/// Most characters kept of one guest log line.
const MAX_LINE_CHARS: usize = 2_000;

/// Log lines of one call into one destination.
#[derive(Debug)]
pub struct GuestLog {
    /// Destination name, the tag on every line.
    destination: std::sync::Arc<str>,
    /// Lines written so far in this call.
    written: u32,
    /// Lines dropped because of the cap.
    dropped: u32,
}

impl GuestLog {
    /// A fresh log for one call.
    pub fn new(destination: std::sync::Arc<str>) -> Self {
        Self {
            destination,
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
        let message = truncate(message, MAX_LINE_CHARS);
        let destination = &*self.destination;
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

/// Guest stdout or stderr: kept up to a cap, the rest silently discarded, so a
/// guest that prints without end neither grows host memory nor fails its call.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    /// What was kept, shared with the host side.
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Most bytes kept.
    cap: usize,
}

impl CapturedOutput {
    /// An empty capture that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            buffer: Default::default(),
            cap,
        }
    }

    /// What was kept so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buffer.lock().expect("capture lock").clone()
    }
}

impl wasmtime_wasi::cli::IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut kept = self.buffer.lock().expect("capture lock");
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
