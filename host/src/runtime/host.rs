//! The host functions of a guest: [`HostState`], the data of one `Store`, and
//! its implementations of the generated import traits.
//!
//! Where it sits: between the generated bindings and [`crate::imports`]. Each
//! import converts the WIT values into the types of `imports` and delegates to
//! it, so the behaviour (allowlist, request limits, log cap) knows nothing of
//! wasmtime; the counting of violations happens here.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::switchyard::destination::{crypto, http, log, settle, types};
use super::limits::GuestLimits;
use super::stdio::CapturedOutput;
use super::{CallContext, SandboxCounters, STDIO_CAPTURE_BYTES};
use crate::imports;
use crate::imports::http::Egress;
use crate::imports::log::GuestLog;
use crate::imports::secrets::Sealed;

/// Data of one `Store`: everything a single call into a guest can touch.
pub struct HostState {
    /// WASI context: no preopens, no env, no network; stdout/stderr captured.
    wasi: WasiCtx,
    /// WASI's resource table.
    table: ResourceTable,
    /// Linear-memory cap of this destination, and what was granted.
    pub(super) limits: GuestLimits,
    /// Outbound HTTP of this destination (allowlist) or a dry-run recorder.
    egress: Egress,
    /// Tagged, capped log of this call.
    log: GuestLog,
    /// Where violations are counted.
    counters: Arc<SandboxCounters>,
    /// Captured guest stdout.
    stdout: CapturedOutput,
    /// Captured guest stderr.
    stderr: CapturedOutput,
    /// Who records the exchanges of this call (debugger, trial).
    observers: super::Observers,
    /// This call's view of the destination's secrets (`None`: it has none).
    sealed: Option<Sealed>,
    /// Events the guest said nothing it does took (`settle.filtered`): id → reason.
    pub(super) filtered: std::collections::HashMap<String, String>,
}

impl HostState {
    /// Fresh state for one call of `ctx`'s destination.
    pub(super) fn new(ctx: &CallContext) -> HostState {
        let stdout = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        let stderr = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        // No preopens, no env, no args, no sockets: WASI is linked only because
        // guest languages' runtimes import it.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        match &ctx.clock {
            Some(readings) => {
                wasi.wall_clock(super::clock::ReplayClock::new(readings));
            }
            None if ctx.observers.keep_clock() => {
                wasi.wall_clock(super::clock::RecordingClock(ctx.observers.clone()));
            }
            None => {}
        }
        let wasi = wasi.build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: GuestLimits::new(ctx.limits.memory_bytes),
            egress: ctx.egress.clone(),
            log: GuestLog::new(ctx.destination.clone(), ctx.transform.clone()),
            counters: ctx.counters.clone(),
            stdout,
            stderr,
            observers: ctx.observers.clone(),
            sealed: (!ctx.secrets.is_empty()).then(|| Sealed::new(ctx.secrets.clone())),
            filtered: Default::default(),
        }
    }

    /// Bind a kept instance's state to the next call of `ctx`'s destination:
    /// its egress, log, counters and recorders, and a new view of the secrets
    /// (a new nonce: the tokens of the last call resolve to nothing). The
    /// guest's memory, and the memory cap it was made with, stay.
    pub(super) fn rebind(&mut self, ctx: &CallContext) {
        self.egress = ctx.egress.clone();
        self.log = GuestLog::new(ctx.destination.clone(), ctx.transform.clone());
        self.counters = ctx.counters.clone();
        self.observers = ctx.observers.clone();
        self.sealed = (!ctx.secrets.is_empty()).then(|| Sealed::new(ctx.secrets.clone()));
        self.filtered.clear();
    }

    /// The settings as this call's guest reads them: each `${secret:NAME}` an opaque token.
    pub(super) fn seal_settings<'a>(&self, settings: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.sealed {
            Some(sealed) => std::borrow::Cow::Owned(sealed.seal_settings(settings)),
            None => std::borrow::Cow::Borrowed(settings),
        }
    }

    /// The bytes of a crypto key: the guest's own, or a secret's by name or token.
    fn key_bytes<'a>(&'a self, key: &'a crypto::Key) -> Result<std::borrow::Cow<'a, [u8]>, String> {
        match key {
            crypto::Key::Bytes(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
            crypto::Key::Secret(name) => self
                .sealed
                .as_ref()
                .and_then(|s| s.key(name))
                .map(|value| std::borrow::Cow::Owned(value.as_bytes().to_vec()))
                .ok_or_else(|| {
                    "no such secret for this destination (see its `secrets`)".to_string()
                }),
        }
    }

    /// After a call: captured stdout and stderr become log lines, and the log
    /// cap and the memory peak are counted.
    pub(super) fn flush(&mut self) {
        let out = self.stdout.take();
        let err = self.stderr.take();
        self.log.write_stream("stdout", &out);
        self.log.write_stream("stderr", &err);
        self.counters
            .log_lines_dropped
            .fetch_add(u64::from(self.log.dropped()), Relaxed);
        self.counters
            .memory_peak_bytes
            .fetch_max(self.limits.granted() as u64, Relaxed);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let req: imports::http::Request = req.into();
        let sending = self.observers.sending(&req, self.sealed.as_ref());
        let answer = self.egress.send(req, self.sealed.as_ref()).await;
        for s in sending {
            s.answered(&answer, self.sealed.as_ref());
        }
        if matches!(answer, Err(imports::http::Error::Denied(_))) {
            self.counters.egress_denied.fetch_add(1, Relaxed);
        }
        answer.map(Into::into).map_err(Into::into)
    }
}

impl crypto::Host for HostState {
    async fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        imports::crypto::sha256(&data)
    }

    async fn hmac_sha256(&mut self, key: crypto::Key, data: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(imports::crypto::hmac_sha256(&self.key_bytes(&key)?, &data))
    }

    async fn hmac_sha512(&mut self, key: crypto::Key, data: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(imports::crypto::hmac_sha512(&self.key_bytes(&key)?, &data))
    }

    async fn sign_rs256(&mut self, key: crypto::Key, data: Vec<u8>) -> Result<Vec<u8>, String> {
        imports::crypto::sign_rs256(&self.key_bytes(&key)?, &data)
    }

    async fn sign_es256(&mut self, key: crypto::Key, data: Vec<u8>) -> Result<Vec<u8>, String> {
        imports::crypto::sign_es256(&self.key_bytes(&key)?, &data)
    }

    async fn random_bytes(&mut self, len: u32) -> Result<Vec<u8>, String> {
        imports::crypto::random_bytes(len)
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        self.log.write(level.into(), &message);
    }
}

/// Most filtered marks one call keeps (a batch is far smaller; a guest that
/// calls in a loop cannot grow the host's memory).
const MAX_FILTERED_MARKS: usize = 10_000;

impl settle::Host for HostState {
    async fn filtered(&mut self, message_id: String, reason: String) {
        if self.filtered.len() < MAX_FILTERED_MARKS {
            self.filtered
                .insert(message_id, super::limits::clip(reason));
        }
    }
}

impl From<http::Request> for imports::http::Request {
    fn from(r: http::Request) -> Self {
        imports::http::Request {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<imports::http::Response> for http::Response {
    fn from(r: imports::http::Response) -> Self {
        http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<imports::http::Error> for http::Error {
    fn from(e: imports::http::Error) -> Self {
        use imports::http::Error as E;
        match e {
            E::Denied(why) => http::Error::Denied(why),
            E::Timeout => http::Error::Timeout,
            E::Connection(why) => http::Error::Connection(why),
            E::TooLarge => http::Error::TooLarge,
        }
    }
}

impl From<log::Level> for imports::log::Level {
    fn from(level: log::Level) -> Self {
        use imports::log::Level as L;
        match level {
            log::Level::Debug => L::Debug,
            log::Level::Info => L::Info,
            log::Level::Warn => L::Warn,
            log::Level::Error => L::Error,
        }
    }
}
