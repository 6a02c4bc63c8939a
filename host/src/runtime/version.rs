//! One loaded version of a plugin: its compiled component and its bytes.
//!
//! Where it sits: the runtime's output to the layers above. A plugin slot
//! (`plugins/`) serves one and keeps the one before for rollback, a trial
//! (`trial/`) holds the one it tries, and a batch in flight keeps the ones it
//! started with. Below them all, so none of them imports another for it.

use std::sync::Arc;

use super::Plugin;

/// One loaded version of a plugin.
#[derive(Debug)]
pub struct Version {
    /// The compiled component.
    pub plugin: Plugin,
    /// Its bytes, kept to write back on rollback (and to tell an upload of
    /// the same bytes from a new version).
    pub(crate) bytes: Arc<Vec<u8>>,
}
