//! One loaded version of a plugin: its compiled component and its bytes.
//!
//! Where it sits: the leaf of `plugins/`. A slot (`plugins/mod.rs`) serves
//! one, keeps the one before for rollback, and a trial (`crate::trial`) holds
//! the one it tries; a batch in flight keeps the ones it started with.

use std::sync::Arc;

use crate::runtime::Plugin;

/// One loaded version of a plugin.
#[derive(Debug)]
pub struct Version {
    /// The compiled component.
    pub plugin: Plugin,
    /// Its bytes, kept to write back on rollback.
    pub(super) bytes: Arc<Vec<u8>>,
}
