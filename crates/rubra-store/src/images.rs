//! Image records and red-measurement events: the types the store keeps for `/images` and
//! `/red`.

use crate::ClientId;
use serde::Serialize;
use std::fmt;

/// The id of an image: the lowercase hex SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageId(String);

impl ImageId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        ImageId(hex::encode(Sha256::digest(bytes)))
    }

    /// Accepts an id from a URL: exactly 64 hex digits (upper case is folded to lower).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ImageId(s.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_db(s: String) -> Self {
        ImageId(s)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is known about a stored image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRecord {
    /// The owner.
    pub client_id: ClientId,
    /// The content hash.
    pub id: ImageId,
    /// `jpeg`, `png`, `gif` or `webp`.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the stored bytes.
    pub bytes: u64,
    /// The red level in [0, 1].
    pub red: f64,
    /// When it was first stored, epoch ms.
    pub created_at: i64,
}

/// One red measurement, recorded for statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Whose measurement it is.
    pub client_id: ClientId,
    /// The stored image it belongs to, if any.
    pub image_id: Option<ImageId>,
    /// The red level in [0, 1].
    pub red: f64,
    /// When, epoch ms UTC.
    pub ts: i64,
}

/// A page request over images, newest first.
#[derive(Debug, Clone, Default)]
pub struct ImagePage {
    /// Only images created at or after this time (epoch ms).
    pub from: Option<i64>,
    /// Only images created before this time (epoch ms).
    pub to: Option<i64>,
    /// Continue after this (created_at, id), as returned with the previous page.
    pub after: Option<(i64, ImageId)>,
    /// At most this many.
    pub limit: u32,
}

/// The blob key of an image's bytes: per client, so deleting one client's image never
/// touches another's copy of the same bytes.
pub fn image_blob_key(client: &ClientId, id: &ImageId) -> String {
    format!("images/{}/{}/{}", client, &id.as_str()[..2], id)
}
