//! Guest stdout and stderr: WASI output streams that keep what a call prints, up
//! to a cap, for [`GuestLog::write_stream`](crate::imports::log::GuestLog::write_stream).

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

    /// What was kept so far, leaving the capture empty (for an instance that
    /// serves another call after this one).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock().expect("capture lock"))
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
