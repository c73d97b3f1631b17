//! What changed between two versions of a watched document, as JSON Pointer changes.

use crate::WatchError;
use crate::select::select;
use rubra_jsondiff::{ArrayMode, Document, Kind, Options, Tolerance};

/// How two versions are compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compare {
    /// Only this part of the document (a JSON Pointer); paths of changes still start at
    /// the document's root.
    pub pointer: Option<String>,
    /// Match the elements of arrays by this member of theirs instead of by position.
    pub key: Option<String>,
}

/// `add`, `remove` or `replace`, as in RFC 6902.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The path did not exist before.
    Add,
    /// The path no longer exists.
    Remove,
    /// The value at the path changed.
    Replace,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// JSON Pointer into the document: array positions of the old version, or of the new one
    /// for added elements.
    pub path: String,
    /// What happened there.
    pub op: Op,
    /// The old value as JSON text, exactly as the source wrote it (not for `add`).
    pub old: Option<String>,
    /// The new value as JSON text (not for `remove`).
    pub new: Option<String>,
}

/// Deepest nesting of a watched document; a deeper one fails the poll
/// ([`WatchError::TooDeep`]).
///
/// Below the comparer's own limit ([`rubra_jsondiff::MAX_DEPTH`]) because changes
/// travel on as JSON read back with `serde_json`, whose recursion limit is 128
/// levels: a change's value sits two levels down in a notification's list of
/// changes, and every accepted document must come through whole.
pub const MAX_DEPTH: usize = 100;

/// Parses `text` as JSON, naming the line and column of the first error; refuses
/// documents nested deeper than [`MAX_DEPTH`].
///
/// This is CPU work proportional to the document: [`crate::poll`] runs it on a
/// blocking thread, and so should any async caller.
pub fn parse(text: &str) -> Result<Document, WatchError> {
    let doc = Document::parse(text.to_owned()).map_err(|e| {
        if e.is_too_deep() {
            WatchError::TooDeep {
                limit: MAX_DEPTH,
                // The parser stops at its own, higher limit: only that is known.
                at: format!(" (more than {} levels)", rubra_jsondiff::MAX_DEPTH),
            }
        } else {
            WatchError::Json(e.to_string())
        }
    })?;
    if doc.depth() > MAX_DEPTH {
        return Err(WatchError::TooDeep {
            limit: MAX_DEPTH,
            at: format!(" ({} levels)", doc.depth()),
        });
    }
    Ok(doc)
}

/// Every change from `old` to `new` (two JSON texts), exact: numbers are compared as the
/// decimals they are written as, so `1.5 → 1.50` is no change and `0.1 → 0.10000001` is one.
///
/// CPU work proportional to the documents: [`crate::poll`] runs it on a blocking thread.
pub fn changes(old: &str, new: &str, how: &Compare) -> Result<Vec<Change>, WatchError> {
    let pointer = how.pointer.as_deref().unwrap_or("");
    // Both texts are checked whole first: a selection is only defined on valid JSON.
    let (a, b) = (parse(old)?, parse(new)?);
    let (a, b) = if pointer.is_empty() {
        (a, b)
    } else {
        (parse(select(old, pointer)?)?, parse(select(new, pointer)?)?)
    };
    let opts = Options {
        tolerance: Tolerance::EXACT,
        array_mode: match &how.key {
            Some(k) => ArrayMode::Key(k.clone()),
            None => ArrayMode::Ordered,
        },
        ..Options::default()
    };
    let report = rubra_jsondiff::diff(&a, &b, &opts);
    Ok(report
        .differences
        .into_iter()
        .map(|d| Change {
            path: format!("{pointer}{}", d.pointer),
            op: match d.kind {
                Kind::Added => Op::Add,
                Kind::Removed => Op::Remove,
                Kind::Changed => Op::Replace,
            },
            old: d.old,
            new: d.new,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: Vec<Change>) -> Vec<String> {
        v.into_iter()
            .map(|c| {
                format!(
                    "{:?} {} {} {}",
                    c.op,
                    c.path,
                    c.old.unwrap_or_default(),
                    c.new.unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn odds_changes_are_leaf_replacements_with_exact_values() {
        let old = r#"{"games":[{"id":1,"odds":{"home":1.85,"away":2.10}}]}"#;
        let new = r#"{"games":[{"id":1,"odds":{"home":1.90,"away":2.1}}]}"#;
        assert_eq!(
            show(changes(old, new, &Compare::default()).expect("comparable")),
            ["Replace /games/0/odds/home 1.85 1.90"]
        );
    }

    #[test]
    fn pointer_limits_the_comparison_but_paths_stay_whole() {
        let old = r#"{"ts": 1, "events": [{"id": 7, "v": 1}, {"id": 8, "v": 2}]}"#;
        let new = r#"{"ts": 2, "events": [{"id": 8, "v": 3}, {"id": 9, "v": 0}]}"#;
        let how = Compare {
            pointer: Some("/events".into()),
            key: Some("id".into()),
        };
        assert_eq!(
            show(changes(old, new, &how).expect("comparable")),
            [
                "Replace /events/1/v 2 3",
                "Remove /events/0 {\"id\":7,\"v\":1} ",
                "Add /events/1  {\"id\":9,\"v\":0}"
            ]
        );
    }

    #[test]
    fn bad_json_and_missing_pointer_are_errors() {
        assert!(matches!(
            changes("{}", "{", &Compare::default()),
            Err(WatchError::Json(_))
        ));
        let how = Compare {
            pointer: Some("/x".into()),
            key: None,
        };
        assert!(matches!(
            changes("{}", "{}", &how),
            Err(WatchError::PointerNotFound(_))
        ));
    }
}
