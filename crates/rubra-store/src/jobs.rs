//! The CSV job queue: jobs leased to workers with a heartbeat, so a dead worker's job is
//! taken over when its lease expires.

use crate::{PgStore, SqliteStore};
use async_trait::async_trait;

/// Queue operations for CSV jobs (DESIGN §6).
#[async_trait]
pub trait JobQueue: Send + Sync {}

#[async_trait]
impl JobQueue for SqliteStore {}

#[async_trait]
impl JobQueue for PgStore {}
