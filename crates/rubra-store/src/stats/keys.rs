//! Client keys: the small integers that stand for clients in the `events` table (migration
//! 0008). An index entry of `(ckey, bin, ts, red)` is about a third of one led by the text id,
//! so ingest writes fewer pages and compares integers instead of strings.
//!
//! The event writer hands a key out the first time a client records an event, in the same
//! transaction as the event, and remembers it once that commits (a key never changes).

use crate::{NewEvent, Result, StoreError};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};
use std::collections::HashMap;
use std::sync::Mutex;

/// Creates a client's key unless it has one.
pub(crate) const ENSURE_KEY_SQL: &str =
    "INSERT INTO client_keys (client_id) VALUES ($1) ON CONFLICT (client_id) DO NOTHING";

/// A client's key.
pub(crate) const KEY_SQL: &str = "SELECT ckey FROM client_keys WHERE client_id = $1";

/// The keys one writer has seen committed.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    known: Mutex<HashMap<String, i64>>,
}

impl KeyCache {
    /// The known keys of the clients of `events`, and the clients not known yet (each once).
    pub(crate) fn lookup<'a>(
        &self,
        events: &[&'a NewEvent],
    ) -> (HashMap<&'a str, i64>, Vec<&'a str>) {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = HashMap::new();
        let mut missing = Vec::new();
        for e in events {
            let client = e.client_id.as_str();
            if keys.contains_key(client) || missing.contains(&client) {
                continue;
            }
            match known.get(client) {
                Some(&k) => {
                    keys.insert(client, k);
                }
                None => missing.push(client),
            }
        }
        (keys, missing)
    }

    /// Remembers keys read in a transaction that has committed.
    pub(crate) fn remember(&self, found: Vec<(String, i64)>) {
        if found.is_empty() {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.extend(found);
    }
}

/// The key of `client` among those resolved for a group (all of them are: a miss is a bug,
/// reported as a failed write rather than written under a wrong key).
pub(crate) fn key_of(keys: &HashMap<&str, i64>, client: &str) -> Result<i64> {
    keys.get(client)
        .copied()
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The key of every client of `events`, creating the missing ones on `conn` (inside the
/// writer's transaction), and the keys to remember once that transaction commits.
pub(crate) async fn client_keys<'a, DB>(
    conn: &mut DB::Connection,
    cache: &KeyCache,
    events: &[&'a NewEvent],
) -> Result<(HashMap<&'a str, i64>, Vec<(String, i64)>)>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    i64: for<'r> Decode<'r, DB> + Type<DB>,
{
    let (mut keys, missing) = cache.lookup(events);
    let mut fresh = Vec::with_capacity(missing.len());
    for client in missing {
        sqlx::query::<DB>(ENSURE_KEY_SQL)
            .bind(client)
            .execute(&mut *conn)
            .await?;
        let key: i64 = sqlx::query_scalar::<DB, i64>(KEY_SQL)
            .bind(client)
            .fetch_one(&mut *conn)
            .await?;
        keys.insert(client, key);
        fresh.push((client.to_owned(), key));
    }
    Ok((keys, fresh))
}
