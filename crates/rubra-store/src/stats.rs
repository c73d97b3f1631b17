//! RED_STATS storage: events, and the structures that keep `GET /stats` exact and fast.

use crate::{PgStore, SqliteStore};
use async_trait::async_trait;

/// Event ingestion and statistics queries (DESIGN §5).
#[async_trait]
pub trait StatsStore: Send + Sync {}

#[async_trait]
impl StatsStore for SqliteStore {}

#[async_trait]
impl StatsStore for PgStore {}
