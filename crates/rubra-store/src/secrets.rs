//! Secrets at rest: webhook signing secrets, Viber auth tokens and watch request headers are
//! stored sealed with XChaCha20-Poly1305 under a key of the secret key file, never in plaintext.
//!
//! # What is stored
//!
//! A sealed value is `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, the 24-byte nonce
//! random (XChaCha's nonce is long enough for random ones). The associated data is the value's
//! place, `table.column:row id`: a sealed value copied into another row does not open there, so
//! whoever can write the database but not read the key cannot hand one client's Viber token or
//! webhook secret to another's subscription. (A subscription's current and previous webhook
//! secrets share one place, so a rotation can move the one to the other in SQL.)
//!
//! # Keys
//!
//! The key file holds one key a line, `id:base64(32 bytes)`; the first seals, every one opens,
//! and each sealed value names its key, so a new key goes first and the old ones stay listed
//! until [`SecretStore::rotate_secret_keys`] has re-sealed everything under the new one. A
//! migration has no key, so [`SecretStore::use_secret_keys`] seals the values still in
//! plaintext when a process starts, and refuses to start when a sealed value names a key that
//! the file lacks (a process with another key file would write values the others cannot read).
//!
//! A value replaced by a pass can outlive its row in the database's files: SQLite keeps freed
//! cell space and old WAL frames, PostgreSQL dead tuples. After a pass that rewrote anything,
//! SQLite's WAL is truncated (its connections run with `secure_delete=FAST`, which zeroes
//! freed space in the pages they write) and PostgreSQL rewrites the two tables with
//! `VACUUM FULL`. Backups taken before still hold what they held.

use crate::{Action, Actor, Change, PgStore, Result, SqliteStore, StoreError};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};

/// Watch headers as stored when there are none: nothing to seal.
pub(crate) const NO_HEADERS: &str = "[]";

/// The prefix of a sealed value (and of its format version).
const SEALED: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Where a sealed value lives; its associated data, so it opens nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// `subscriptions.secret` and `subscriptions.previous_secret` of this subscription id.
    WebhookSecret(&'a str),
    /// The Viber `auth_token` inside `subscriptions.channel` of this subscription id.
    ViberToken(&'a str),
    /// `watches.headers` of this watch id.
    WatchHeaders(&'a str),
}

impl Place<'_> {
    fn associated_data(&self) -> String {
        match self {
            Place::WebhookSecret(id) => format!("subscriptions.secret:{id}"),
            Place::ViberToken(id) => format!("subscriptions.channel.auth_token:{id}"),
            Place::WatchHeaders(id) => format!("watches.headers:{id}"),
        }
    }
}

struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys of the secret key file: the first seals, all open.
pub struct SecretBox {
    keys: Vec<SecretKey>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

fn key_error(msg: impl Into<String>) -> StoreError {
    StoreError::SecretKey(msg.into())
}

/// A key id is 1 to 64 of `[A-Za-z0-9_-]`: it sits between colons in every sealed value.
fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SecretBox {
    /// Reads a key file's text: one `id:base64(32 bytes)` a line, the first the current key.
    /// Blank lines and lines starting with `#` are skipped. The error names the line, never
    /// the key.
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys: Vec<SecretKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = n + 1;
            let (id, b64) = line
                .split_once(':')
                .ok_or_else(|| key_error(format!("line {n} is not id:base64key")))?;
            if !valid_key_id(id) {
                return Err(key_error(format!(
                    "line {n}: a key id is 1 to 64 letters, digits, '_' or '-'"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(key_error(format!(
                    "line {n}: key id {id:?} is listed twice"
                )));
            }
            let key = B64
                .decode(b64.trim())
                .map_err(|_| key_error(format!("line {n}: the key is not standard base64")))?;
            if key.len() != KEY_LEN {
                return Err(key_error(format!(
                    "line {n}: a key is {KEY_LEN} bytes, not {}",
                    key.len()
                )));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&key)
                .map_err(|_| key_error(format!("line {n}: unusable key")))?;
            keys.push(SecretKey {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(key_error("the secret key file holds no key"));
        }
        Ok(SecretBox { keys })
    }

    /// A new key file line, `id:base64key`, with a random 32-byte key and a random id.
    pub fn generate_line() -> String {
        let mut key = [0u8; KEY_LEN];
        // The OS random source failing is unrecoverable; there is nothing sane to fall back to.
        getrandom::fill(&mut key).expect("operating system random source failed");
        format!("k{}:{}", crate::random_id(6), B64.encode(key))
    }

    /// The key ids, the current (sealing) one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        // parse() refuses a file without keys.
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Seals `plaintext` for `place` under the current key.
    pub fn seal(&self, plaintext: &str, place: Place<'_>) -> String {
        let Some(key) = self.keys.first() else {
            unreachable!("a SecretBox holds at least one key");
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("operating system random source failed");
        let aad = place.associated_data();
        let sealed = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            // Encryption fails only for messages of gigabytes; ours are short strings.
            .expect("XChaCha20-Poly1305 seals any short message");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED}{}:{}", key.id, B64.encode(out))
    }

    /// Opens a stored value of `place`. A value that is not sealed (a row written before
    /// secrets were sealed, not yet converted) is answered as it is.
    pub fn open(&self, stored: &str, place: Place<'_>) -> Result<String> {
        let Some((id, b64)) = split_sealed(stored) else {
            return Ok(stored.to_owned());
        };
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            key_error(format!(
                "a stored secret is sealed under key id {id:?}, which the secret key file \
                 does not hold"
            ))
        })?;
        let bytes = B64
            .decode(b64)
            .map_err(|_| key_error("a stored sealed secret is not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(key_error("a stored sealed secret is too short"));
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| key_error("a stored sealed secret is too short"))?;
        let aad = place.associated_data();
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                key_error(format!(
                    "a stored secret ({}) does not open: it was altered, or sealed for \
                     another row",
                    aad
                ))
            })?;
        String::from_utf8(plain).map_err(|_| key_error("a stored secret is not UTF-8"))
    }

    /// Whether `stored` is sealed under the current key (nothing to do on a rotation).
    pub fn is_current(&self, stored: &str) -> bool {
        split_sealed(stored).is_some_and(|(id, _)| id == self.current_key_id())
    }

    /// Whether this box can open values sealed under `id`.
    pub fn has_key(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }
}

/// The key id and the base64 payload of a sealed value; `None` for a plaintext one.
pub fn split_sealed(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(SEALED)?.split_once(':')
}

/// The key a store seals and opens with: none until [`SecretStore::use_secret_keys`].
///
/// Without one, writing a secret fails (nothing is ever stored in plaintext) and a sealed
/// value does not open; tools that never touch secrets need none.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretSlot(Arc<RwLock<Option<Arc<SecretBox>>>>);

impl SecretSlot {
    pub(crate) fn get(&self) -> Option<Arc<SecretBox>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set(&self, keys: Arc<SecretBox>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(keys);
    }

    /// Seals `plaintext` for `place`; an error when no key is loaded.
    pub(crate) fn seal(&self, plaintext: &str, place: Place<'_>) -> Result<String> {
        let keys = self.get().ok_or_else(|| {
            key_error("no secret key is loaded: secrets are never stored in plaintext")
        })?;
        Ok(keys.seal(plaintext, place))
    }

    /// Opens a stored value; a plaintext one is answered as it is.
    pub(crate) fn open(&self, stored: &str, place: Place<'_>) -> Result<String> {
        if split_sealed(stored).is_none() {
            return Ok(stored.to_owned());
        }
        match self.get() {
            Some(keys) => keys.open(stored, place),
            None => Err(key_error(
                "a stored secret is sealed, and no secret key is loaded",
            )),
        }
    }
}

/// What a sealing pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sealed {
    /// Values that were stored in plaintext and are now sealed.
    pub sealed: u64,
    /// Values re-sealed under the current key (by a rotation).
    pub resealed: u64,
}

/// Loading the secret key and re-sealing what is stored (see the module documentation).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Uses `keys` from now on. First checks every stored sealed value: when one names a key
    /// id that `keys` does not hold, fails with [`StoreError::SecretKey`] naming the ids and
    /// changes nothing. Then seals every value still stored in plaintext, in one transaction
    /// (a sealed value is left as it is, so running it again does nothing).
    async fn use_secret_keys(&self, keys: SecretBox) -> Result<Sealed>;

    /// Re-seals every stored secret that is not under the current key, in one transaction
    /// with its audit row (by `actor`). Fails when no key is loaded.
    async fn rotate_secret_keys(&self, actor: &crate::Actor) -> Result<Sealed>;
}

/// One stored value to rewrite: the table and column, the row, what was read and what to
/// write instead (written only if the value is still what was read).
#[derive(Debug)]
pub(crate) struct Rewrite {
    pub(crate) sql: &'static str,
    pub(crate) id: String,
    pub(crate) old: String,
    pub(crate) new: String,
}

/// `UPDATE`s of [`Rewrite`]: `$1` new value, `$2` row id, `$3` the value read.
pub(crate) const REWRITE_SECRET: &str =
    "UPDATE subscriptions SET secret = $1 WHERE id = $2 AND secret = $3";
pub(crate) const REWRITE_PREVIOUS_SECRET: &str =
    "UPDATE subscriptions SET previous_secret = $1 WHERE id = $2 AND previous_secret = $3";
pub(crate) const REWRITE_CHANNEL: &str =
    "UPDATE subscriptions SET channel = $1 WHERE id = $2 AND channel = $3";
pub(crate) const REWRITE_HEADERS: &str =
    "UPDATE watches SET headers = $1 WHERE id = $2 AND headers = $3";

/// Plans a sealing pass over the stored values: checks every sealed one names a key of
/// `keys`, and answers the rewrites (plaintext sealed; with `rotate`, other keys' values
/// re-sealed under the current one) and the counts.
pub(crate) struct Planner<'a> {
    keys: &'a SecretBox,
    rotate: bool,
    unknown: Vec<String>,
    pub(crate) rewrites: Vec<Rewrite>,
    pub(crate) counts: Sealed,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(keys: &'a SecretBox, rotate: bool) -> Self {
        Planner {
            keys,
            rotate,
            unknown: Vec::new(),
            rewrites: Vec::new(),
            counts: Sealed::default(),
        }
    }

    /// The stored value, sealed as it should be now; `None` when it is fine as it is (or names
    /// an unknown key, which is remembered).
    fn reseal(&mut self, stored: &str, place: Place<'_>) -> Result<Option<String>> {
        match split_sealed(stored) {
            None => {
                self.counts.sealed += 1;
                Ok(Some(self.keys.seal(stored, place)))
            }
            Some((id, _)) if !self.keys.has_key(id) => {
                if !self.unknown.iter().any(|u| u == id) {
                    self.unknown.push(id.to_owned());
                }
                Ok(None)
            }
            Some(_) if self.rotate && !self.keys.is_current(stored) => {
                let plain = self.keys.open(stored, place)?;
                self.counts.resealed += 1;
                Ok(Some(self.keys.seal(&plain, place)))
            }
            Some(_) => Ok(None),
        }
    }

    /// A subscription's `secret` or `previous_secret`.
    pub(crate) fn webhook_secret(
        &mut self,
        sql: &'static str,
        id: &str,
        stored: Option<String>,
    ) -> Result<()> {
        let Some(old) = stored else { return Ok(()) };
        if let Some(new) = self.reseal(&old, Place::WebhookSecret(id))? {
            self.rewrites.push(Rewrite {
                sql,
                id: id.to_owned(),
                old,
                new,
            });
        }
        Ok(())
    }

    /// A subscription's `channel` JSON: the Viber `auth_token` inside it.
    pub(crate) fn channel(&mut self, id: &str, stored: String) -> Result<()> {
        let mut value: serde_json::Value = match serde_json::from_str(&stored) {
            Ok(v) => v,
            Err(e) => return Err(key_error(format!("subscription {id}: bad channel: {e}"))),
        };
        let Some(token) = value.get("auth_token").and_then(|t| t.as_str()) else {
            return Ok(());
        };
        if let Some(new_token) = self.reseal(token, Place::ViberToken(id))? {
            value["auth_token"] = serde_json::Value::String(new_token);
            self.rewrites.push(Rewrite {
                sql: REWRITE_CHANNEL,
                id: id.to_owned(),
                old: stored,
                new: value.to_string(),
            });
        }
        Ok(())
    }

    /// A watch's `headers` (an empty list, holding nothing, stays as it is).
    pub(crate) fn watch_headers(&mut self, id: &str, stored: String) -> Result<()> {
        if stored == NO_HEADERS {
            return Ok(());
        }
        if let Some(new) = self.reseal(&stored, Place::WatchHeaders(id))? {
            self.rewrites.push(Rewrite {
                sql: REWRITE_HEADERS,
                id: id.to_owned(),
                old: stored,
                new,
            });
        }
        Ok(())
    }

    /// Fails, changing nothing, when a stored value names a key the file lacks.
    pub(crate) fn check(&self) -> Result<()> {
        if self.unknown.is_empty() {
            return Ok(());
        }
        Err(key_error(format!(
            "stored secrets are sealed under key id(s) {} that the secret key file (holding {}) \
             does not have: every process sharing this database needs the same key file",
            self.unknown.join(", "),
            self.keys.key_ids().join(", ")
        )))
    }
}

/// Reads every stored secret, plans the pass, and writes it in one transaction (after
/// `gate`, the backend's write gate); a rotation (`rotate_by`) is recorded in the audit log
/// in that transaction. Answers the counts and whether anything was written (then the
/// backend scrubs the replaced values' old pages). The SQL is the same on both databases.
async fn reseal_stored<DB, G>(
    pool: &Pool<DB>,
    gate: impl Future<Output = G>,
    keys: &SecretBox,
    rotate_by: Option<&Actor>,
) -> Result<(Sealed, bool)>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> &'t String: Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    let rotate = rotate_by.is_some();
    let mut plan = Planner::new(keys, rotate);
    // Deleted subscriptions keep their secrets too: they are sealed as well.
    let subs = sqlx::query::<DB>("SELECT id, secret, previous_secret, channel FROM subscriptions")
        .fetch_all(pool)
        .await?;
    for row in &subs {
        let id: String = row.try_get(0)?;
        plan.webhook_secret(REWRITE_SECRET, &id, row.try_get(1)?)?;
        plan.webhook_secret(REWRITE_PREVIOUS_SECRET, &id, row.try_get(2)?)?;
        plan.channel(&id, row.try_get(3)?)?;
    }
    let watches = sqlx::query::<DB>("SELECT id, headers FROM watches")
        .fetch_all(pool)
        .await?;
    for row in &watches {
        let id: String = row.try_get(0)?;
        plan.watch_headers(&id, row.try_get(1)?)?;
    }
    plan.check()?;
    if plan.rewrites.is_empty() && !rotate {
        return Ok((plan.counts, false));
    }
    let _gate = gate.await;
    let mut tx = pool.begin().await?;
    for r in &plan.rewrites {
        // Only if unchanged since it was read: a concurrent writer (another process
        // starting, a rotation) has written a sealed value already.
        sqlx::query::<DB>(r.sql)
            .bind(&r.new)
            .bind(&r.id)
            .bind(&r.old)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(actor) = rotate_by {
        let change = Change::new(None, Action::SecretsRotate, keys.current_key_id())
            .with_detail(serde_json::json!({ "resealed": plan.counts.resealed }));
        crate::audit::write(&mut *tx, actor, &change).await?;
    }
    tx.commit().await?;
    Ok((plan.counts, true))
}

impl SqliteStore {
    /// [`reseal_stored`], then the scrub of the replaced values' old pages.
    async fn reseal(&self, keys: &SecretBox, rotate_by: Option<&Actor>) -> Result<Sealed> {
        let (counts, wrote) =
            reseal_stored(self.pool(), self.write_gate(), keys, rotate_by).await?;
        // The values just replaced may linger in free space and old log pages.
        if wrote && let Err(e) = self.scrub_replaced_secrets().await {
            tracing::warn!(error = %e, "could not scrub the replaced secrets' old pages");
        }
        Ok(counts)
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    #[tracing::instrument(name = "store.use_secret_keys", skip_all)]
    async fn use_secret_keys(&self, keys: SecretBox) -> Result<Sealed> {
        let keys = Arc::new(keys);
        let counts = self.reseal(&keys, None).await?;
        self.secrets().set(keys);
        Ok(counts)
    }

    #[tracing::instrument(name = "store.rotate_secret_keys", skip_all)]
    async fn rotate_secret_keys(&self, actor: &Actor) -> Result<Sealed> {
        let keys = self
            .secrets()
            .get()
            .ok_or_else(|| StoreError::SecretKey("no secret key is loaded".to_owned()))?;
        self.reseal(&keys, Some(actor)).await
    }
}

impl PgStore {
    /// [`reseal_stored`], then the scrub of the replaced values' old pages.
    async fn reseal(&self, keys: &SecretBox, rotate_by: Option<&Actor>) -> Result<Sealed> {
        let (counts, wrote) =
            reseal_stored(self.pool(), self.write_gate(), keys, rotate_by).await?;
        // The values just replaced may linger in free space and old log pages.
        if wrote && let Err(e) = self.scrub_replaced_secrets().await {
            tracing::warn!(error = %e, "could not scrub the replaced secrets' old pages");
        }
        Ok(counts)
    }
}

#[async_trait]
impl SecretStore for PgStore {
    #[tracing::instrument(name = "store.use_secret_keys", skip_all)]
    async fn use_secret_keys(&self, keys: SecretBox) -> Result<Sealed> {
        let keys = Arc::new(keys);
        let counts = self.reseal(&keys, None).await?;
        self.secrets().set(keys);
        Ok(counts)
    }

    #[tracing::instrument(name = "store.rotate_secret_keys", skip_all)]
    async fn rotate_secret_keys(&self, actor: &Actor) -> Result<Sealed> {
        let keys = self
            .secrets()
            .get()
            .ok_or_else(|| StoreError::SecretKey("no secret key is loaded".to_owned()))?;
        self.reseal(&keys, Some(actor)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn two_keys() -> (String, String) {
        (SecretBox::generate_line(), SecretBox::generate_line())
    }

    #[test]
    fn sealed_values_open_and_name_their_key() {
        let (a, _) = two_keys();
        let keys = SecretBox::parse(&a).unwrap();
        let sealed = keys.seal("whsec_abc", Place::WebhookSecret("sub_1"));
        assert!(sealed.starts_with(&format!("enc:v1:{}:", keys.current_key_id())));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            keys.open(&sealed, Place::WebhookSecret("sub_1")).unwrap(),
            "whsec_abc"
        );
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            keys.seal("whsec_abc", Place::WebhookSecret("sub_1"))
        );
    }

    #[test]
    fn a_sealed_secret_moved_to_another_row_does_not_open() {
        let (a, _) = two_keys();
        let keys = SecretBox::parse(&a).unwrap();
        let sealed = keys.seal("token", Place::ViberToken("sub_1"));
        let err = keys.open(&sealed, Place::ViberToken("sub_2")).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        assert!(keys.open(&sealed, Place::WatchHeaders("sub_1")).is_err());
    }

    #[test]
    fn an_altered_ciphertext_does_not_open() {
        let (a, _) = two_keys();
        let keys = SecretBox::parse(&a).unwrap();
        let sealed = keys.seal("token", Place::ViberToken("sub_1"));
        let (id, b64) = split_sealed(&sealed).unwrap();
        let mut bytes = B64.decode(b64).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("enc:v1:{id}:{}", B64.encode(bytes));
        assert!(keys.open(&altered, Place::ViberToken("sub_1")).is_err());
    }

    #[test]
    fn the_first_key_seals_and_every_listed_key_opens() {
        let (a, b) = two_keys();
        let old = SecretBox::parse(&a).unwrap();
        let sealed_old = old.seal("x", Place::WatchHeaders("wat_1"));
        let both = SecretBox::parse(&format!("{b}\n# old key\n{a}\n")).unwrap();
        assert_eq!(both.key_ids().len(), 2);
        assert_eq!(
            both.open(&sealed_old, Place::WatchHeaders("wat_1"))
                .unwrap(),
            "x"
        );
        assert!(!both.is_current(&sealed_old));
        let sealed_new = both.seal("x", Place::WatchHeaders("wat_1"));
        assert!(both.is_current(&sealed_new));
        let err = old
            .open(&sealed_new, Place::WatchHeaders("wat_1"))
            .unwrap_err();
        assert!(err.to_string().contains("does not hold"), "{err}");
    }

    #[test]
    fn bad_key_files_are_refused_without_showing_the_key() {
        assert!(SecretBox::parse("").is_err());
        assert!(SecretBox::parse("# only a comment\n").is_err());
        assert!(SecretBox::parse("nocolon").is_err());
        assert!(SecretBox::parse("k1:AAAA").is_err());
        assert!(SecretBox::parse("bad id:AAAA").is_err());
        let (a, _) = two_keys();
        let err = SecretBox::parse(&format!("{a}\n{a}\n")).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(!err.to_string().contains(a.split_once(':').unwrap().1));
        let keys = SecretBox::parse(&a).unwrap();
        assert!(!format!("{keys:?}").contains(a.split_once(':').unwrap().1));
    }

    #[test]
    fn plaintext_is_answered_as_it_is_and_an_empty_slot_refuses_to_seal() {
        let slot = SecretSlot::default();
        assert_eq!(slot.open("[]", Place::WatchHeaders("w")).unwrap(), "[]");
        assert!(slot.seal("x", Place::WatchHeaders("w")).is_err());
        let (a, _) = two_keys();
        let keys = SecretBox::parse(&a).unwrap();
        let sealed = keys.seal("x", Place::WatchHeaders("w"));
        assert!(slot.open(&sealed, Place::WatchHeaders("w")).is_err());
        slot.set(Arc::new(keys));
        assert_eq!(slot.open(&sealed, Place::WatchHeaders("w")).unwrap(), "x");
    }
}
