//! The Rust authoring kit for Switchyard transformations.
//!
//! A transformation is a `cdylib` crate built for `wasm32-wasip2` that
//! implements the `transform` world of `wit/transform.wit`: it gets a batch of
//! events before one destination's `deliver`, and says of each whether it goes
//! on (changed or not), is dropped (settled as filtered), or fails. This crate
//! owns the one `wit_bindgen::generate!` of that world for Rust guests (apart
//! from the destination kit's, so a destination never carries the transform
//! world, nor the other way round), and adds:
//!
//! - the [`Transform`] trait: implement [`Transform::event`] for one event as a
//!   JSON object, and the kit provides `describe`, `check`, the settings half of
//!   `transform` (a settings error rejects every event with the message) and
//!   the serialising of kept events;
//! - verdicts: [`Step::Keep`], [`Step::Pass`] (unchanged, not serialised
//!   again), [`Step::Drop`], [`retry`], [`reject`];
//! - settings: [`parse_settings`] (serde, with a message that names the bad field);
//! - paths: [`get_path`], [`take_path`], [`set_path`] on dotted paths (`traits.email`);
//! - log lines: [`warn`], [`debug`].
//!
//! A transformation looks like this (the bundled ones in `transforms/` are
//! written the same way):
//!
//! ```ignore
//! use serde::Deserialize;
//! use switchyard_transform_kit::{self as kit, Step};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { drop_event: String }
//!
//! struct DropOne;
//!
//! impl kit::Transform for DropOne {
//!     const NAME: &'static str = "drop-one";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const SETTINGS_SCHEMA: &'static str = r#"{"type":"object"}"#;
//!     type Settings = Settings;
//!
//!     fn settings(raw: &str) -> Result<Settings, String> {
//!         kit::parse_settings(raw, "drop-one")
//!     }
//!
//!     fn event(s: &Settings, event: kit::Message) -> Step {
//!         if event.get("event").and_then(|e| e.as_str()) == Some(s.drop_event.as_str()) {
//!             Step::Drop(format!("event `{}` is not sent", s.drop_event))
//!         } else {
//!             Step::Keep(event)
//!         }
//!     }
//! }
//!
//! switchyard_transform_kit::export_transform!(DropOne);
//! ```
//!
//! The crate also compiles for the build machine, so its pure helpers (and a
//! transformation's [`Transform::event`]) are unit-tested with a plain `cargo test`.

mod path;
mod settings;
mod transform;

/// The generated bindings of the `transform` world. Use the re-exports at the
/// crate root instead of this module.
#[doc(hidden)]
#[allow(unsafe_code)] // the canonical-ABI glue that wit-bindgen generates
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_transform",
        default_bindings_module: "$crate::bindings",
    });
}

/// `export_transform!(MyType)`: exports `MyType` (which implements
/// [`Transform`], and so [`Guest`]) as the component's `describe`, `check` and
/// `transform`. Use it once, in the transformation's crate.
pub use bindings::export_transform;
/// Outbound HTTP for lookups (the host's `http.send`; denied unless the
/// transformation's `allowed_hosts` covers the URL).
pub use bindings::switchyard::destination::http;
/// Log lines tagged with the destination's and the transformation's names.
pub use bindings::switchyard::destination::log;
/// What a transformation returns per event.
pub use bindings::switchyard::destination::transform_types::Verdict;
/// The values that cross the boundary.
pub use bindings::switchyard::destination::types::{
    Event, EventType, Failure, Metadata, RetryHint,
};
/// The three exports a transformation implements: `describe`, `check`, `transform`.
pub use bindings::Guest;

pub use path::{get_path, set_path, take_path};
pub use settings::parse_settings;
pub use transform::{reject, retry, Message, Step, Transform};

/// Re-exported so that transformations and the kit agree on one `serde_json`.
pub use serde_json;

/// Write one log line at `warn` level.
pub fn warn(message: &str) {
    log::log(log::Level::Warn, message);
}

/// Write one log line at `debug` level.
pub fn debug(message: &str) {
    log::log(log::Level::Debug, message);
}
