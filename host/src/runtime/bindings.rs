//! The one `bindgen!` of the host: Rust types and traits for `wit/destination.wit`.
//!
//! Every other module uses the generated types from here. The host traits of
//! the imports are implemented on [`HostState`](super::HostState) by delegating
//! to `crate::imports`, which holds the behaviour (allowlist, log cap).

wasmtime::component::bindgen!({
    world: "destination",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

use self::switchyard::destination::{http, log, types};
use super::HostState;

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let answer = self.egress.send(req).await;
        if matches!(answer, Err(http::Error::Denied(_))) {
            self.counters
                .egress_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        answer
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        self.log.write(level, &message);
    }
}
