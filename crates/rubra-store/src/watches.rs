//! Watches (DESIGN §8): JSON sources polled on an interval, and every change found in them.
//!
//! # Who polls a watch
//!
//! Watches are leased to processes, like jobs: [`WatchStore::claim_watches`] hands a process
//! the watches whose lease is free or expired, [`WatchStore::renew_watches`] extends all of a
//! process's leases at once (and tells it which it lost), and a process that stops cleanly
//! [`releases`](WatchStore::release_watches) them so another takes over at once. A watch is
//! polled by one process at a time; a dead process's watches move on when their leases expire.
//!
//! # How a poll is recorded
//!
//! [`WatchStore::record_poll`] writes a poll's outcome in one transaction fenced by the lease
//! ([`WatchLease`]: owner and claim number): the new baseline document, its validators, the
//! health fields and the changes found, numbered per watch from `last_seq + 1`. The fenced
//! `UPDATE` of the watch row comes first, so the row lock orders the writers of one watch and
//! its changes commit in `seq` order — a reader that has seen `seq` n has seen every change
//! up to n. A process that lost the lease writes nothing, and the next holder diffs against
//! the stored baseline: a change is recorded once, and none is lost to a takeover.
//!
//! When the watch names a subscription, the same transaction writes one notification carrying
//! the poll's changes into the outbox, which the delivery workers send like any other.

mod backend;

use crate::{ClientId, Result, Scope, StoreError, random_id};
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The id of a watch: `wat_` followed by 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WatchId(String);

impl WatchId {
    /// A fresh random id.
    pub fn generate() -> Self {
        WatchId(format!("wat_{}", random_id(8)))
    }

    /// Accepts an id from a URL; `None` if it cannot be a watch id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("wat_")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| WatchId(s.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to watch and how, as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The http(s) URL of the JSON source.
    pub url: String,
    /// Time between polls.
    pub interval_ms: u32,
    /// Only this part of the document (a JSON Pointer), if given.
    pub pointer: Option<String>,
    /// Arrays are matched by this member of their objects instead of by position.
    pub key: Option<String>,
    /// Extra request headers (name, value), e.g. an API token of the source.
    pub headers: Vec<(String, String)>,
    /// A subscription of the same client to notify (webhook, Viber, stream) of every poll
    /// that found changes.
    pub subscription: Option<crate::SubscriptionId>,
}

/// A watch to create.
#[derive(Debug, Clone)]
pub struct NewWatch {
    /// The owner.
    pub client_id: ClientId,
    /// What to watch.
    pub spec: WatchSpec,
    /// The owner's most watches; creating one more fails with [`StoreError::QuotaExceeded`].
    pub limit: u32,
}

/// A watch as stored, with the health of its polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Its id.
    pub id: WatchId,
    /// The owner.
    pub client_id: ClientId,
    /// What it watches.
    pub spec: WatchSpec,
    /// Created, epoch ms.
    pub created_at: i64,
    /// The first successful poll (the baseline changes are counted from), epoch ms.
    pub baseline_at: Option<i64>,
    /// The last successful poll, epoch ms.
    pub last_ok_at: Option<i64>,
    /// The last failure's message; cleared by the next success.
    pub last_error: Option<String>,
    /// When the last failure happened, epoch ms.
    pub last_error_at: Option<i64>,
    /// Failed polls in a row.
    pub failures: u32,
    /// The seq of the newest change (0: none yet).
    pub last_seq: i64,
    /// The instance id of the process polling it, while its lease runs.
    pub polled_by: Option<String>,
}

/// A process's hold on a watch; every write under it is matched against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLease {
    /// The watch.
    pub watch_id: WatchId,
    /// The process's instance id.
    pub owner: String,
    /// The claim number: the fencing token.
    pub generation: i64,
}

/// The last document seen, as a poll needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The document's bytes as fetched (`None` before the first successful poll).
    pub doc: Option<String>,
    /// Its `ETag`, for `If-None-Match`.
    pub etag: Option<String>,
    /// Its `Last-Modified`, for `If-Modified-Since`.
    pub last_modified: Option<String>,
}

/// A watch handed to a process by a claim.
#[derive(Debug, Clone)]
pub struct ClaimedWatch {
    /// The lease to present on every write.
    pub lease: WatchLease,
    /// The watch.
    pub watch: Watch,
    /// What to diff the next poll against.
    pub baseline: Baseline,
}

/// `add`, `remove` or `replace` (RFC 6902 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The path did not exist before.
    Add,
    /// The path no longer exists.
    Remove,
    /// The value at the path changed.
    Replace,
}

impl ChangeOp {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Add => "add",
            ChangeOp::Remove => "remove",
            ChangeOp::Replace => "replace",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "add" => ChangeOp::Add,
            "remove" => ChangeOp::Remove,
            "replace" => ChangeOp::Replace,
            _ => {
                return Err(StoreError::Config(format!(
                    "unknown change op {s:?} in the database"
                )));
            }
        })
    }
}

/// A change found by a poll, before it is numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// JSON Pointer into the fetched document.
    pub path: String,
    /// What happened there.
    pub op: ChangeOp,
    /// The old value as JSON text (not for `add`).
    pub old: Option<String>,
    /// The new value as JSON text (not for `remove`).
    pub new: Option<String>,
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchChange {
    /// Its number within the watch, from 1.
    pub seq: i64,
    /// When the poll that found it was made, epoch ms.
    pub ts: i64,
    /// JSON Pointer into the fetched document.
    pub path: String,
    /// What happened there.
    pub op: ChangeOp,
    /// The old value as JSON text.
    pub old: Option<String>,
    /// The new value as JSON text.
    pub new: Option<String>,
}

/// The outcome of one poll.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// The source answered with the document seen last (304, or the same bytes).
    Unchanged {
        /// When the poll was made, epoch ms.
        at: i64,
    },
    /// A new document (the first one, or one that differs): it becomes the baseline.
    Document {
        /// When the poll was made, epoch ms.
        at: i64,
        /// The new baseline.
        baseline: Baseline,
        /// What changed since the old one (empty for the first document, or when only
        /// formatting changed).
        changes: Vec<NewChange>,
    },
    /// The poll failed; the baseline stays.
    Failed {
        /// When the poll was made, epoch ms.
        at: i64,
        /// What went wrong, for `last_error`.
        error: String,
    },
}

/// Queries of the watches feature (DESIGN §8).
#[async_trait]
pub trait WatchStore: Send + Sync {
    /// Creates a watch, unless its owner already has `limit` of them (then
    /// [`StoreError::QuotaExceeded`]); recorded in the audit log as made by `actor`.
    async fn create_watch(&self, watch: &NewWatch, actor: &crate::Actor) -> Result<Watch>;

    /// Looks a watch up within `scope`.
    async fn get_watch(&self, scope: &Scope, id: &WatchId) -> Result<Option<Watch>>;

    /// The watches within `scope`, oldest first.
    async fn list_watches(&self, scope: &Scope) -> Result<Vec<Watch>>;

    /// Deletes a watch and its changes within `scope`, audited as done by `actor`; `false`
    /// when there was none.
    async fn delete_watch(&self, scope: &Scope, id: &WatchId, actor: &crate::Actor)
    -> Result<bool>;

    /// Up to `limit` changes of a watch with `seq > since`, oldest first.
    async fn watch_changes(&self, id: &WatchId, since: i64, limit: u32)
    -> Result<Vec<WatchChange>>;

    /// Leases up to `max` watches that no process holds (or whose holder's lease expired) to
    /// `owner` for `lease`.
    async fn claim_watches(
        &self,
        owner: &str,
        lease: Duration,
        max: u32,
    ) -> Result<Vec<ClaimedWatch>>;

    /// Extends every lease `owner` holds by `lease`; returns the leases still held (a watch
    /// deleted or taken over is missing from it).
    async fn renew_watches(&self, owner: &str, lease: Duration) -> Result<Vec<WatchLease>>;

    /// Gives up every lease of `owner` (a clean shutdown), so others may claim them at once.
    async fn release_watches(&self, owner: &str) -> Result<()>;

    /// Records a poll's outcome under `lease`; `None` when the lease was lost (nothing is
    /// written), else the watch's `last_seq` after it.
    async fn record_poll(&self, lease: &WatchLease, outcome: &PollOutcome) -> Result<Option<i64>>;
}
