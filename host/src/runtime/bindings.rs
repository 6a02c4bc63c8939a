//! Generated code only: Rust types and traits for the worlds in `wit/`, one
//! `bindgen!` per world.
//!
//! - [`Destination`]: the `destination` world of `wit/destination.wit`;
//! - [`transform::Transform`]: the `transform` world of `wit/transform.wit`;
//! - [`deleting::DeletingDestination`]: the `deleting-destination` world of
//!   `wit/deletion.wit` (a destination that also exports `deletion`).
//!   It shares the `types`, `http`, `log` and `crypto` interfaces, so its bindings reuse
//!   the ones generated here (`with`), and one linker serves both worlds.
//!
//! The host traits of the imports are implemented in `host.rs`; the
//! conversions of exported values (events, outcomes, verdicts) live in
//! `plugin.rs` and `transform.rs`.
#![allow(missing_docs)] // generated

wasmtime::component::bindgen!({
    world: "destination",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

/// The `transform` world.
pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "switchyard:destination/types": crate::runtime::bindings::switchyard::destination::types,
            "switchyard:destination/http": crate::runtime::bindings::switchyard::destination::http,
            "switchyard:destination/log": crate::runtime::bindings::switchyard::destination::log,
            "switchyard:destination/crypto": crate::runtime::bindings::switchyard::destination::crypto,
        },
    });
}

/// The `deleting-destination` world: a destination with the `deletion`
/// export. Its imports are the destination world's, so one linker serves it.
pub mod deleting {
    wasmtime::component::bindgen!({
        world: "deleting-destination",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "switchyard:destination/types": crate::runtime::bindings::switchyard::destination::types,
            "switchyard:destination/http": crate::runtime::bindings::switchyard::destination::http,
            "switchyard:destination/log": crate::runtime::bindings::switchyard::destination::log,
            "switchyard:destination/crypto": crate::runtime::bindings::switchyard::destination::crypto,
            "switchyard:destination/settle": crate::runtime::bindings::switchyard::destination::settle,
        },
    });
}
