//! The Rust authoring kit for Switchyard destinations.
//!
//! A destination is a `cdylib` crate built for `wasm32-wasip2` that implements the
//! `destination` world of `wit/destination.wit`. This crate owns the one
//! `wit_bindgen::generate!` of that world for Rust guests, re-exports the generated
//! types, and adds what every destination needs:
//!
//! - the [`Destination`] trait: implement it, and the kit provides the component's
//!   `describe`, `check` and the settings half of `deliver` (a settings error rejects
//!   every event with the message), and writes one `warn` line when events failed
//!   ("2 of 5 events failed; the first: ...");
//! - HTTP: [`send`], [`post_json`], [`basic_auth`], [`url_encode`], [`header`], and
//!   lookups on [`Response`] ([`Response::header`], [`Response::json`], ...);
//! - outcomes: [`classify`] / [`classify_as`] (the standard classification of an
//!   answer), [`classify_with`] (the same, with the vendor's own message read from the
//!   body by a hook) and the halves [`classify_response`] / [`classify_error`], [`retry`],
//!   [`reject`], [`retry_after_ms`], [`excerpt`];
//! - per-record outcomes: [`deliver_records`] (events to records, one request, the
//!   vendor's per-record errors mapped back to events) and [`record_outcomes`];
//! - settings: [`parse_settings`] (serde, with a message that names the bad field),
//!   [`check_url`], [`check_endpoint`] and [`string_or_integer`];
//! - events: [`event_json`] and small accessors ([`value_at`], [`id_field`],
//!   [`str_at`], [`object_at`]), and time ([`timestamp_ms`], [`parse_iso8601_ms`],
//!   [`iso8601`], [`now_ms`], [`now_iso`]);
//! - crypto done by the host, with keys that can be secrets the component never
//!   holds: [`crypto`] ([`crypto::key`], [`crypto::sha256`], [`crypto::hmac_sha256`],
//!   [`crypto::sign_rs256`], ...);
//! - log lines: [`warn`], [`debug`], or [`log`] itself;
//! - deletion of users at the vendor (privacy regulations): implement [`Deletion`]
//!   too and export with [`export_deleting_destination`] instead.
//!
//! A destination looks like this (the bundled ones in `destinations/` and the
//! scaffold of `switchyard new --lang rust` are written the same way):
//!
//! ```ignore
//! use serde::Deserialize;
//! use switchyard_destination_kit::{self as kit, Event};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     url: String,
//! }
//!
//! struct Acme;
//!
//! impl kit::Destination for Acme {
//!     const NAME: &'static str = "acme";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const SETTINGS_SCHEMA: &'static str = r#"{"type":"object","required":["url"]}"#;
//!     const MAX_BATCH: u32 = 100;
//!     type Settings = Settings;
//!
//!     fn settings(raw: &str) -> Result<Settings, String> {
//!         let s: Settings = kit::parse_settings(raw, "acme")?;
//!         kit::check_url("acme", "url", &s.url)?;
//!         Ok(s)
//!     }
//!
//!     fn deliver(s: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
//!         let body: Vec<_> = events.iter().map(kit::event_json).collect();
//!         let outcome = kit::classify_as("acme", kit::post_json(&s.url, &[], &body));
//!         vec![outcome; events.len()]
//!     }
//! }
//!
//! switchyard_destination_kit::export_destination!(Acme);
//! ```
//!
//! The crate also compiles for the build machine, so its pure helpers are unit-tested
//! with a plain `cargo test -p switchyard-destination-kit`. The `http` and `log`
//! imports only exist inside a component: natively, [`send`] and the log helpers go
//! to [`mock`], so a destination's `deliver` is unit-tested with `cargo test` too.

pub mod crypto;
mod destination;
mod event;
#[cfg(not(target_family = "wasm"))]
pub mod mock;
mod outcome;
mod records;
mod send;
mod settings;
mod time;

/// The generated bindings of the `destination` world (one `generate!` for every Rust
/// destination). Use the re-exports at the crate root instead of this module.
#[doc(hidden)]
#[allow(unsafe_code)] // the canonical-ABI glue that wit-bindgen generates
pub mod bindings {
    wit_bindgen::generate!({
        world: "destination",
        path: "../../wit",
        // The export macro is used from the destination crates, and finds the
        // generated types here, through `$crate`.
        pub_export_macro: true,
        export_macro_name: "export_destination",
        default_bindings_module: "$crate::bindings",
    });
}

/// The generated bindings of the `deleting-destination` world (`wit/deletion.wit`):
/// the destination world and the `deletion` export. Its imports are the ones above.
#[doc(hidden)]
#[allow(unsafe_code)] // the canonical-ABI glue that wit-bindgen generates
pub mod deleting_bindings {
    wit_bindgen::generate!({
        world: "deleting-destination",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_deleting_destination",
        default_bindings_module: "$crate::deleting_bindings",
        with: {
            "switchyard:destination/types@0.1.0": crate::bindings::switchyard::destination::types,
            "switchyard:destination/http@0.1.0": crate::bindings::switchyard::destination::http,
            "switchyard:destination/log@0.1.0": crate::bindings::switchyard::destination::log,
            "switchyard:destination/crypto@0.1.0": crate::bindings::switchyard::destination::crypto,
            "switchyard:destination/settle@0.1.0": crate::bindings::switchyard::destination::settle,
        },
    });
}

/// `export_deleting_destination!(MyType)`: exports `MyType` (which implements
/// [`Destination`] and [`Deletion`]) as a destination that also deletes users
/// at its vendor (`wit/deletion.wit`). Use it instead of [`export_destination`].
pub use deleting_bindings::export_deleting_destination;
/// One user a deletion names: `Subject::UserId(id)` or `Subject::AnonymousId(id)`.
pub use deleting_bindings::exports::switchyard::destination::deletion::Subject;

/// `export_destination!(MyType)`: exports `MyType` (which implements [`Destination`], and
/// so [`Guest`]) as the
/// component's `describe`, `check` and `deliver`. Use it once, in the destination crate.
pub use bindings::export_destination;
/// Outbound HTTP (the host's `http.send` import) and its `Request`, `Response`, `Error`.
pub use bindings::switchyard::destination::http;
/// Log lines tagged with the destination's name (`log::log(log::Level::Warn, "...")`).
pub use bindings::switchyard::destination::log;
/// The values that cross the boundary.
pub use bindings::switchyard::destination::types::{
    Event, EventType, Failure, Metadata, RetryHint,
};
/// The three exports a destination implements: `describe`, `check`, `deliver`.
pub use bindings::Guest;
/// An answer from `http.send`, whatever its status.
pub use http::Response;

pub use destination::{Deletion, Destination};
pub use event::{event_json, id_field, object_at, str_at, value_at};
pub use outcome::{
    classify, classify_as, classify_error, classify_response, classify_with, excerpt, reject,
    retry, retry_after_ms, Outcome,
};
pub use records::{deliver_records, record_outcomes};
pub use send::{basic_auth, header, post_json, send, url_encode, Headers};
pub use settings::{check_endpoint, check_url, parse_settings, string_or_integer};
pub use time::{iso8601, now_iso, now_ms, parse_iso8601_ms, timestamp_ms};

/// Re-exported so that destinations and the kit agree on one `serde_json`.
pub use serde_json;

/// Write one log line at `warn` level.
pub fn warn(message: &str) {
    log_line(log::Level::Warn, message);
}

/// Write one log line at `debug` level.
pub fn debug(message: &str) {
    log_line(log::Level::Debug, message);
}

/// One log line through the host (natively, in `cargo test`: into [`mock::logs`]).
fn log_line(level: log::Level, message: &str) {
    #[cfg(not(target_family = "wasm"))]
    mock::log(level, message);
    #[cfg(target_family = "wasm")]
    log::log(level, message);
}
