//! Validated domain types shared by the store and the server: ids, keys, who is asking.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::num::NonZeroU32;

/// Milliseconds since the Unix epoch, UTC: the one time unit stored in both databases.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `n` random bytes from the operating system, hex encoded.
pub fn random_id(n: usize) -> String {
    hex::encode(random_bytes(n))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The OS random source failing is unrecoverable; there is nothing sane to fall back to.
    getrandom::fill(&mut buf).expect("operating system random source failed");
    buf
}

/// The id of a client: `cl_` followed by 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh random id.
    pub fn generate() -> Self {
        ClientId(format!("cl_{}", random_id(8)))
    }

    /// Accepts an id as it came from a URL or JSON; `None` if it cannot be a client id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("cl_")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ClientId(s.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds an id read back from the database.
    pub(crate) fn from_db(s: String) -> Self {
        ClientId(s)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client of the company: the owner of images, events, subscriptions, jobs and watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Its unique name.
    pub name: String,
    /// When it was created, epoch ms.
    pub created_at: i64,
    /// Its own request rate limit, if an admin set one (`rate_limit_rps`, `rate_limit_burst`;
    /// null: the server's default).
    #[serde(flatten)]
    pub rate_limit: RateLimitOverride,
    /// Its own quotas, where an admin set them (a missing one: the server's default).
    pub quotas: QuotaOverrides,
    /// True while an admin has it disabled: its keys are refused (`401 client_disabled`) and
    /// its jobs, watches and deliveries wait.
    pub disabled: bool,
    /// Since when it is disabled, epoch ms; null while enabled.
    pub disabled_at: Option<i64>,
}

/// A client's own quotas, set by an admin; `None` follows the server's default
/// (`--max-subscriptions-per-client` and the like). Stored as one JSON object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    /// Live subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<u64>,
    /// Queued and running jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u64>,
    /// Watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watches: Option<u64>,
    /// Stored overlays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlays: Option<u64>,
    /// Bytes of all stored overlays together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_bytes: Option<u64>,
    /// Bytes of all stored images together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_bytes: Option<u64>,
}

impl QuotaOverrides {
    /// Reads the `quotas` column; a damaged value reads as "all defaults" (and says so in the
    /// log), so a bad row never locks a client out.
    pub(crate) fn from_db(text: Option<String>) -> Self {
        let Some(text) = text else {
            return QuotaOverrides::default();
        };
        serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a client's quotas column is not valid; using defaults");
            QuotaOverrides::default()
        })
    }

    /// The column's value: NULL when nothing is overridden.
    pub(crate) fn to_db(self) -> Option<String> {
        (self != QuotaOverrides::default())
            .then(|| serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned()))
    }

    /// Applies a change: each `Some(v)` of `patch` sets that quota to `v` (`Some(None)`
    /// returns it to the default); `None` leaves it.
    pub fn apply(mut self, patch: &QuotaPatch) -> Self {
        let set = |slot: &mut Option<u64>, change: Option<Option<u64>>| {
            if let Some(v) = change {
                *slot = v;
            }
        };
        set(&mut self.subscriptions, patch.subscriptions);
        set(&mut self.jobs, patch.jobs);
        set(&mut self.watches, patch.watches);
        set(&mut self.overlays, patch.overlays);
        set(&mut self.overlay_bytes, patch.overlay_bytes);
        set(&mut self.image_bytes, patch.image_bytes);
        self
    }
}

/// A change to a client's quotas: per quota, `None` leaves it, `Some(None)` returns it to the
/// default, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaPatch {
    /// Live subscriptions.
    pub subscriptions: Option<Option<u64>>,
    /// Queued and running jobs.
    pub jobs: Option<Option<u64>>,
    /// Watches.
    pub watches: Option<Option<u64>>,
    /// Stored overlays.
    pub overlays: Option<Option<u64>>,
    /// Bytes of all stored overlays together.
    pub overlay_bytes: Option<Option<u64>>,
    /// Bytes of all stored images together.
    pub image_bytes: Option<Option<u64>>,
}

/// A client's own request rate limit, set by an admin. A `None` part follows the server's
/// default (`--rate-limit-rps`, `--rate-limit-burst`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimitOverride {
    /// Requests per second.
    #[serde(rename = "rate_limit_rps")]
    pub rps: Option<NonZeroU32>,
    /// The token bucket's size: requests at once above the rate.
    #[serde(rename = "rate_limit_burst")]
    pub burst: Option<NonZeroU32>,
}

impl RateLimitOverride {
    /// Reads the two nullable columns; a value outside `1..=u32::MAX` (which the columns'
    /// CHECK refuses) reads as the default.
    pub(crate) fn from_db(rps: Option<i64>, burst: Option<i64>) -> Self {
        let part = |v: Option<i64>| {
            v.and_then(|v| u32::try_from(v).ok())
                .and_then(NonZeroU32::new)
        };
        RateLimitOverride {
            rps: part(rps),
            burst: part(burst),
        }
    }
}

/// A change to a client's rate limit: `None` leaves a part as it is, `Some(None)` returns it
/// to the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitPatch {
    /// New requests per second.
    pub rps: Option<Option<NonZeroU32>>,
    /// New bucket size.
    pub burst: Option<Option<NonZeroU32>>,
}

/// Whoever holds a key, with what authenticating a request needs to know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    /// Who it is.
    pub principal: Principal,
    /// The client's own rate limit (always the default for admin keys).
    pub rate_limit: RateLimitOverride,
    /// The key's public id.
    pub key_id: KeyId,
    /// When the key stops working, epoch ms; `None`: never.
    pub expires_at: Option<i64>,
    /// When the key was last recorded as used, epoch ms (recorded at most once a minute).
    pub last_used_at: Option<i64>,
    /// True when the key's client is disabled (never for admin keys).
    pub client_disabled: bool,
}

impl KeyHolder {
    /// True when the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// Who is making a request, resolved from the bearer key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An admin key: sees everything.
    Admin,
    /// A client key: sees only that client's data.
    Client(ClientId),
}

impl Principal {
    /// The scope of data this principal may see.
    pub fn scope(&self) -> Scope {
        match self {
            Principal::Admin => Scope::All,
            Principal::Client(id) => Scope::Client(id.clone()),
        }
    }

    /// True for admin keys.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}

/// Which rows a query may touch. Every store method on client-owned data takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every client's rows (admins).
    All,
    /// Only this client's rows.
    Client(ClientId),
}

impl Scope {
    /// The client filter to bind in SQL: `None` means no filter.
    pub fn client_filter(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Client(id) => Some(id.as_str()),
        }
    }
}

/// A bearer token as handed to its holder once: `rbk_` followed by 64 hex digits.
///
/// Only its [`KeyHash`] is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key with 256 bits of randomness.
    pub fn generate() -> Self {
        ApiKey(format!("rbk_{}", random_id(32)))
    }

    /// Wraps a token as presented in an `Authorization` header.
    pub fn from_token(token: &str) -> Self {
        ApiKey(token.to_owned())
    }

    /// The token text, to show to its holder.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The first [`ApiKey::PREFIX_LEN`] characters, shown in key lists so their holder can tell
    /// keys apart: `rbk_` and 32 of the key's 256 random bits, which leaves 224 to guess.
    pub fn prefix(&self) -> &str {
        self.0.get(..Self::PREFIX_LEN).unwrap_or(self.0.as_str())
    }

    /// How many leading characters [`prefix`](Self::prefix) shows.
    pub const PREFIX_LEN: usize = 12;

    /// The hash under which the key is stored and looked up.
    ///
    /// A plain SHA-256 is right here (unlike for passwords): keys carry 256 random bits, so
    /// there is nothing to brute-force, and the lookup stays a single indexed read.
    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The hex SHA-256 of an [`ApiKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key to store: its hash and whom it belongs to.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The hash of the token.
    pub hash: KeyHash,
    /// The owner.
    pub principal: Principal,
    /// A free-form label for people (e.g. "created by rubra admin"); the key's `name`.
    pub label: String,
    /// The first characters of the token ([`ApiKey::prefix`]), shown in key lists.
    pub prefix: Option<String>,
    /// When the key stops working, epoch ms; `None`: never.
    pub expires_at: Option<i64>,
}

impl NewKey {
    /// A key that never expires, for `principal`, named `label`.
    pub fn new(key: &ApiKey, principal: Principal, label: impl Into<String>) -> Self {
        NewKey {
            hash: key.hash(),
            principal,
            label: label.into(),
            prefix: Some(key.prefix().to_owned()),
            expires_at: None,
        }
    }
}

/// The public id of an API key: `key_` followed by 16 hex digits. Naming a key by it (to list
/// or revoke it) reveals nothing of the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random id.
    pub fn generate() -> Self {
        KeyId(format!("key_{}", random_id(8)))
    }

    /// Accepts an id as it came from a URL; `None` if it cannot be a key id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("key_")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| KeyId(s.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds an id read back from the database.
    pub(crate) fn from_db(s: String) -> Self {
        KeyId(s)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What may be shown about a stored key: never the token, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Its public id.
    pub id: KeyId,
    /// Its name (`label` in the database).
    pub name: String,
    /// The first characters of the token, to tell keys apart; null for keys made before keys
    /// had names.
    pub prefix: Option<String>,
    /// When it was made, epoch ms.
    pub created_at: i64,
    /// When it stops working, epoch ms; null: never.
    pub expires_at: Option<i64>,
    /// When it was last used, epoch ms, to the minute (written at most once a minute).
    pub last_used_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_roundtrip_and_rejects_garbage() {
        let id = ClientId::generate();
        assert_eq!(ClientId::parse(id.as_str()), Some(id));
        assert_eq!(ClientId::parse("cl_123"), None);
        assert_eq!(ClientId::parse("../etc/passwd"), None);
    }

    #[test]
    fn key_hash_is_stable_and_key_is_redacted_in_debug() {
        let k = ApiKey::from_token("rbk_abc");
        assert_eq!(k.hash(), ApiKey::from_token("rbk_abc").hash());
        assert_eq!(k.hash().as_str().len(), 64);
        assert!(!format!("{k:?}").contains("abc"));
    }

    #[test]
    fn key_id_roundtrip_and_prefix_shows_only_the_start() {
        let id = KeyId::generate();
        assert_eq!(KeyId::parse(id.as_str()), Some(id));
        assert_eq!(KeyId::parse("key_12"), None);
        let key = ApiKey::generate();
        assert_eq!(key.prefix().len(), ApiKey::PREFIX_LEN);
        assert!(key.reveal().starts_with(key.prefix()));
        assert_eq!(ApiKey::from_token("ab").prefix(), "ab");
    }
}
