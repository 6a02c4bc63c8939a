//! Generated code only: Rust types and traits for the worlds in `wit/`, one
//! `bindgen!` per world.
//!
//! - [`Destination`]: the `destination` world of `wit/destination.wit`.
//!
//! The host traits of the imports are implemented in `host.rs`; the
//! conversions of exported values (events, outcomes) live in `plugin.rs`.
#![allow(missing_docs)] // generated

wasmtime::component::bindgen!({
    world: "destination",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});
