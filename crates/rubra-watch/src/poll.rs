//! One poll of a watched source: a conditional GET, and the changes against the baseline.

use crate::WatchError;
use crate::compare::{Change, Compare, changes, parse};
use rubra_fetch::{Fetched, Fetcher, Validators};
use std::time::Duration;

/// A watched source and how to compare its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The http(s) URL.
    pub url: String,
    /// Extra request headers (name, value).
    pub headers: Vec<(String, String)>,
    /// How versions are compared.
    pub compare: Compare,
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The source still serves the baseline: it answered 304, or the very same bytes. No
    /// parse was needed.
    Unchanged,
    /// A new version (or the first one). `changes` is empty for the first version and when
    /// only the formatting changed.
    New {
        /// The document as sent (the next baseline).
        doc: String,
        /// Its validators, for the next conditional request.
        validators: Validators,
        /// What changed since the baseline.
        changes: Vec<Change>,
    },
}

/// Polls `source` once against the `baseline` document (with its `validators`), if any.
///
/// The baseline stays what it was on every error: a source that sends garbage, or whose
/// document no longer holds the watched pointer, fails the poll and is compared with the
/// last good version when it recovers — an outage produces no phantom changes.
pub async fn poll(
    fetcher: &Fetcher,
    source: &Source,
    baseline: Option<&str>,
    validators: &Validators,
) -> Result<Polled, WatchError> {
    // Without a baseline there is nothing to revalidate: ask for the whole document.
    let conditional = baseline.is_some() && !validators.is_empty();
    let fetched = fetcher
        .fetch_with(
            &source.url,
            conditional.then_some(validators),
            &source.headers,
        )
        .await?;
    let response = match fetched {
        Fetched::NotModified { .. } if baseline.is_some() => return Ok(Polled::Unchanged),
        Fetched::NotModified { .. } => {
            return Err(WatchError::Fetch(rubra_fetch::FetchError::Status(304)));
        }
        Fetched::Modified(r) => r,
    };
    if baseline.is_some_and(|b| b.as_bytes() == response.body.as_ref()) {
        return Ok(Polled::Unchanged);
    }
    // Parsing and comparing cost CPU in proportion to the document (up to the fetch size
    // limit): a blocking thread does it, so the async workers keep serving meanwhile.
    let body = response.body;
    let baseline = baseline.map(str::to_owned);
    let compare = source.compare.clone();
    let (doc, changes) =
        tokio::task::spawn_blocking(move || examine(&body, baseline.as_deref(), &compare))
            .await
            .map_err(|e| WatchError::Internal(e.to_string()))??;
    Ok(Polled::New {
        doc,
        validators: response.validators,
        changes,
    })
}

/// The new version's text and its changes against `baseline` (none for the first version).
fn examine(
    body: &[u8],
    baseline: Option<&str>,
    compare: &Compare,
) -> Result<(String, Vec<Change>), WatchError> {
    let doc = String::from_utf8(body.to_vec())
        .map_err(|_| WatchError::Json("the body is not UTF-8".into()))?;
    let first = |doc: &str| -> Result<Vec<Change>, WatchError> {
        // The first version is only checked: it is the baseline, not a change.
        parse(doc)?;
        if let Some(p) = &compare.pointer {
            crate::select::select(doc, p)?;
        }
        Ok(Vec::new())
    };
    let changes = match baseline {
        Some(old) => match changes(old, &doc, compare) {
            // A baseline stored before the depth limit can never be read again: the new
            // version replaces it, as a first version would, instead of failing forever.
            Err(WatchError::TooDeep { .. }) if parse(old).is_err() => first(&doc)?,
            found => found?,
        },
        None => first(&doc)?,
    };
    Ok((doc, changes))
}

/// The wait before the next poll after `failures` failed polls in a row: the interval, then
/// doubling with each failure up to a minute (never less than the interval).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    let cap = interval.max(Duration::from_secs(60));
    interval.saturating_mul(1u32 << failures.min(16)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_deeper_than_the_limit_is_replaced_not_failed_forever() {
        let n = crate::MAX_DEPTH + 1;
        let old = "[".repeat(n) + &"]".repeat(n);
        let how = Compare::default();
        let (doc, changes) = examine(b"[1]", Some(&old), &how).expect("new baseline");
        assert_eq!((doc.as_str(), changes.len()), ("[1]", 0));
        let deeper = old.clone() + " ";
        let err = examine(deeper.as_bytes(), Some(&old), &how).expect_err("too deep");
        assert_eq!(err.code(), "json_too_deep");
        let err = examine(deeper.as_bytes(), Some("[]"), &how).expect_err("too deep");
        assert_eq!(err.code(), "json_too_deep");
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let s = Duration::from_secs(1);
        let got: Vec<u64> = (0..9).map(|f| next_delay(s, f).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let slow = Duration::from_secs(120);
        assert_eq!(next_delay(slow, 3), slow);
    }
}
