//! Deletions (`DELETE`, `SUPPRESS_WITH_DELETE`): a regulation's subjects'
//! events erased from the store and from this host's memory, with a record of
//! what was removed where.
//!
//! Where it sits: [`super::Privacy`] starts a [`job`] when it records a
//! deletion, and again at start for a deletion that a stopped host left
//! unfinished. The job asks the store to erase, in bounded steps
//! (`Regulations::erase_step`), every event [`Who`] takes, and asks the host
//! ([`Reach`], implemented where the host is put together) to forget its
//! in-memory copies. After each step it rewrites the regulation's
//! [`Progress`] in the store, so a host killed halfway goes on from the last
//! step when it starts again. A host that follows the store forgets its own
//! memory's copies when it learns of a deletion another host recorded.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::regulation::{Kind, Regulation, State, Subjects};
use super::suppress::{id_text, SubjectKey, SubjectKind};
use crate::store::{now_ms, Erased, Matches, Regulations};

/// What a deletion removed from a host's memory, by place (`source_debugger`,
/// `delivery_debugger`, `recordings`, `trial_samples`, `warm_instances`).
pub type Forgotten = BTreeMap<String, u64>;

/// What of the host a deletion reaches beyond the store: its in-memory copies
/// of events and its destinations. Defined here, implemented where the host
/// is put together.
#[async_trait::async_trait]
pub trait Reach: Send + Sync + 'static {
    /// The destinations configured now, each with whether its component can
    /// delete at its vendor.
    fn destinations(&self) -> Vec<(String, bool)>;

    /// Ask destination `name` to delete `subjects` at its vendor, tried again
    /// as a delivery is: where it stands once done, refused or out of its
    /// retry window; `None` when the host is stopping (it stays pending, and
    /// the next start goes on).
    async fn forward(&self, name: &str, subjects: &Subjects) -> Option<DestinationStatus>;

    /// Forget every copy of an event `who` takes (asked with the event's
    /// source, when the copy knows it, and its JSON), and whatever holds a
    /// user's data in forms that cannot be told apart (a vendor's request
    /// bodies, a guest's memory). How many were forgotten, by place.
    fn forget(&self, who: &dyn Fn(Option<&str>, &str) -> bool) -> Forgotten;
}

/// Nothing to reach (tests, tools).
pub struct Nothing;

#[async_trait::async_trait]
impl Reach for Nothing {
    fn destinations(&self) -> Vec<(String, bool)> {
        Vec::new()
    }

    async fn forward(&self, _: &str, _: &Subjects) -> Option<DestinationStatus> {
        None
    }

    fn forget(&self, _: &dyn Fn(Option<&str>, &str) -> bool) -> Forgotten {
        Forgotten::new()
    }
}

/// The subjects of a deletion, as events name them: a keyed hash of each id,
/// and the sources the deletion covers.
pub struct Who {
    /// What the ids are hashed with.
    key: SubjectKey,
    /// The subjects' full 128-bit hashes (an erase must not take another
    /// user's event on a 64-bit collision).
    hashes: HashSet<u128>,
    /// `None`: every source.
    sources: Option<Vec<String>>,
}

/// The three ids an event names its user by. Every other field is skipped
/// unread, so matching costs one pass over the text and no tree.
#[derive(Deserialize)]
struct Ids {
    #[serde(default, rename = "userId")]
    user_id: Option<Value>,
    #[serde(default, rename = "anonymousId")]
    anonymous_id: Option<Value>,
    #[serde(default, rename = "previousId")]
    previous_id: Option<Value>,
}

impl Who {
    /// The subjects of `r`, hashed with `key`.
    pub fn of(r: &Regulation, key: SubjectKey) -> Result<Who, String> {
        Ok(Who {
            key,
            hashes: r.hashes()?.into_iter().collect(),
            sources: r.sources.clone(),
        })
    }

    /// Whether the event `json` of `source` (`None`: not known) is one of the
    /// subjects': its `userId`, its `anonymousId` or an alias's `previousId`,
    /// as ingest's suppression reads them. A source outside the deletion's
    /// takes nothing; an unknown source is taken by the ids alone.
    pub fn takes(&self, source: Option<&str>, json: &str) -> bool {
        if let (Some(sources), Some(source)) = (&self.sources, source) {
            if !sources.iter().any(|s| s == source) {
                return false;
            }
        }
        let Ok(ids) = serde_json::from_str::<Ids>(json) else {
            return false;
        };
        let hit = |kind: SubjectKind, v: &Option<Value>| {
            id_text(v.as_ref()).is_some_and(|id| self.hashes.contains(&self.key.hash(kind, &id)))
        };
        hit(SubjectKind::UserId, &ids.user_id)
            || hit(SubjectKind::AnonymousId, &ids.anonymous_id)
            || hit(SubjectKind::UserId, &ids.previous_id)
            || hit(SubjectKind::AnonymousId, &ids.previous_id)
    }
}

/// Where a destination stands with a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// Not yet asked, or to be asked again.
    Pending,
    /// The destination's vendor took the deletion.
    Done,
    /// It could not be forwarded (see the reason).
    Failed,
    /// The destination's component offers no deletion.
    NotSupported,
}

impl Forward {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Pending => "pending",
            Forward::Done => "done",
            Forward::Failed => "failed",
            Forward::NotSupported => "not_supported",
        }
    }
}

/// One destination's part of a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// Where it stands.
    pub state: Forward,
    /// Why it failed or is not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a deletion stands: kept in the store beside the write-once record,
/// rewritten after every step. It holds counts and names only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Where the deletion stands as a whole: `failed` when a destination failed.
    pub state: State,
    /// Why it failed: each failed destination and its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the store's erase goes on (a position only the store reads).
    pub position: u64,
    /// What was erased from the store, per place.
    pub erased: Erased,
    /// What the host that ran it forgot from its memory, per place (the
    /// other hosts of a NATS store forget theirs within a second).
    pub memory: Forgotten,
    /// Each destination's part.
    pub destinations: BTreeMap<String, DestinationStatus>,
    /// When it was last rewritten (RFC 3339).
    pub updated_at: String,
    /// When it was complete (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            state: State::Pending,
            reason: None,
            position: 0,
            erased: Erased::default(),
            memory: Forgotten::new(),
            destinations: BTreeMap::new(),
            updated_at: rfc3339(now_ms()),
            done_at: None,
        }
    }
}

/// `ms` since the epoch as RFC 3339.
pub(super) fn rfc3339(ms: crate::store::Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `kind` deletes.
pub fn deletes(kind: Kind) -> bool {
    matches!(kind, Kind::Delete | Kind::SuppressWithDelete)
}

/// Read the progress of `id` from the store (`None`: not started).
pub(super) async fn progress(
    store: &dyn Regulations,
    id: &str,
) -> Result<Option<Progress>, crate::store::StoreError> {
    Ok(store
        .status(id)
        .await?
        .and_then(|doc| serde_json::from_str(&doc).ok()))
}

/// Longest wait between two tries of a step the store did not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a deletion job works with.
pub(super) struct Job {
    /// Where the events are, and where progress is kept.
    pub store: Arc<dyn Regulations>,
    /// This host's in-memory copies and destinations.
    pub reach: Arc<dyn Reach>,
    /// The regulation.
    pub regulation: Regulation,
    /// Its subjects.
    pub who: Arc<Who>,
}

/// Carry out a deletion to the end, from where its progress says it stands:
/// memory first, then the store step by step (a step the store does not
/// answer is tried again, with a growing pause), then the destinations.
pub(super) async fn job(j: Job) {
    let id = j.regulation.id.clone();
    let mut p = match progress(j.store.as_ref(), &id).await {
        Ok(Some(p)) => p,
        Ok(None) => Progress::new(),
        Err(e) => {
            tracing::warn!(
                regulation = id.as_str(),
                "privacy: deletion not started: {e}"
            );
            return;
        }
    };
    if p.state == State::Done {
        return;
    }
    let who = j.who.clone();
    for (place, n) in j.reach.forget(&|source, json| who.takes(source, json)) {
        *p.memory.entry(place).or_default() += n;
    }
    let matches: Matches = {
        let who = j.who.clone();
        Arc::new(move |source: &str, json: &str| who.takes(Some(source), json))
    };
    let mut pause = Duration::from_millis(250);
    loop {
        match j.store.erase_step(matches.clone(), p.position).await {
            Ok(step) => {
                pause = Duration::from_millis(250);
                p.erased.add(step.erased);
                let Some(next) = step.next else { break };
                p.position = next;
                save(j.store.as_ref(), &id, &mut p).await;
            }
            Err(e) => {
                tracing::warn!(
                    regulation = id.as_str(),
                    "privacy: a deletion step failed (tried again in {pause:?}): {e}"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
    save(j.store.as_ref(), &id, &mut p).await;
    // Each destination once, in turn; one already settled (before a restart)
    // is not asked again.
    let key = subjects_key(&id);
    let kept: Option<Subjects> = match j.store.status(&key).await {
        Ok(doc) => doc.and_then(|d| serde_json::from_str(&d).ok()),
        Err(e) => {
            tracing::warn!(regulation = id.as_str(), "privacy: deletion paused: {e}");
            return;
        }
    };
    for (name, can) in j.reach.destinations() {
        if p.destinations
            .get(&name)
            .is_some_and(|d| d.state != Forward::Pending)
        {
            continue;
        }
        let status = match (&kept, can) {
            (_, false) => DestinationStatus {
                state: Forward::NotSupported,
                reason: Some("its component does not export `deletion`".into()),
            },
            (None, true) => DestinationStatus {
                state: Forward::Failed,
                reason: Some(
                    "the ids in the clear were not kept for it (recorded while it could not \
                     delete, or lost in a crash before they were written): ask again"
                        .into(),
                ),
            },
            (Some(subjects), true) => match j.reach.forward(&name, subjects).await {
                Some(status) => status,
                None => return,
            },
        };
        p.destinations.insert(name, status);
        save(j.store.as_ref(), &id, &mut p).await;
    }
    if kept.is_some() {
        // Every destination has answered: the ids in the clear go.
        let mut pause = Duration::from_millis(250);
        while let Err(e) = j.store.erase_status(&key).await {
            tracing::warn!(
                regulation = id.as_str(),
                "privacy: cannot erase the ids: {e}"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }
    let failed: Vec<String> = p
        .destinations
        .iter()
        .filter(|(_, d)| d.state == Forward::Failed)
        .map(|(n, d)| format!("{n}: {}", d.reason.as_deref().unwrap_or("failed")))
        .collect();
    p.state = if failed.is_empty() {
        State::Done
    } else {
        State::Failed
    };
    p.reason = (!failed.is_empty()).then(|| failed.join("; "));
    p.done_at = Some(rfc3339(now_ms()));
    save(j.store.as_ref(), &id, &mut p).await;
    tracing::info!(
        regulation = id.as_str(),
        state = p.state.as_str(),
        log = p.erased.log,
        retries = p.erased.retries,
        dead_letters = p.erased.dead_letters,
        "privacy: deletion ended"
    );
}

/// The status key under which a deletion's ids are kept in the clear until
/// every destination was asked.
pub(super) fn subjects_key(id: &str) -> String {
    format!("{id}.subjects")
}

/// Write `p` (stamped now), trying until the store takes it.
async fn save(store: &dyn Regulations, id: &str, p: &mut Progress) {
    p.updated_at = rfc3339(now_ms());
    let doc = serde_json::to_string(p).expect("progress serializes");
    let mut pause = Duration::from_millis(250);
    while let Err(e) = store.set_status(id, &doc).await {
        tracing::warn!(
            regulation = id,
            "privacy: cannot record a deletion's progress: {e}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}
