//! JSON Pointer (RFC 6901) selection on raw JSON text: the selected part is returned as the
//! exact bytes the source sent, so numbers keep every digit.

use crate::WatchError;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// Checks that `pointer` is a JSON Pointer (empty, or `/`-separated tokens).
pub fn check_pointer(pointer: &str) -> Result<(), WatchError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(WatchError::InvalidPointer(pointer.to_owned()))
    }
}

/// The part of the JSON text `doc` that `pointer` designates, as it is written in `doc`.
///
/// `doc` must already be known to be valid JSON; malformed text designates nothing.
pub fn select<'a>(doc: &'a str, pointer: &str) -> Result<&'a str, WatchError> {
    check_pointer(pointer)?;
    let not_found = || WatchError::PointerNotFound(pointer.to_owned());
    let mut cur = doc.trim();
    if pointer.is_empty() {
        return Ok(cur);
    }
    for token in pointer[1..].split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next: &'a RawValue = if cur.starts_with('{') {
            let members: HashMap<String, &'a RawValue> =
                serde_json::from_str(cur).map_err(|_| not_found())?;
            members.get(&token).ok_or_else(not_found)?
        } else if cur.starts_with('[') {
            let valid_index = token == "0"
                || (!token.is_empty()
                    && !token.starts_with('0')
                    && token.bytes().all(|b| b.is_ascii_digit()));
            let index: usize = if valid_index {
                token.parse().map_err(|_| not_found())?
            } else {
                return Err(not_found());
            };
            let items: Vec<&'a RawValue> = serde_json::from_str(cur).map_err(|_| not_found())?;
            items.get(index).ok_or_else(not_found)?
        } else {
            return Err(not_found());
        };
        cur = next.get().trim();
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_members_and_elements_exactly() {
        let doc = r#" {"games": [{"odds": {"home": 1.850000000000000000001}}], "a/b": {"~": 7}} "#;
        assert_eq!(select(doc, "").ok(), Some(doc.trim()));
        assert_eq!(
            select(doc, "/games/0/odds/home").ok(),
            Some("1.850000000000000000001")
        );
        assert_eq!(select(doc, "/a~1b/~0").ok(), Some("7"));
        for missing in [
            "/games/1",
            "/games/01",
            "/games/-",
            "/nope",
            "/games/0/odds/home/x",
        ] {
            assert!(
                matches!(select(doc, missing), Err(WatchError::PointerNotFound(_))),
                "{missing}"
            );
        }
        assert!(matches!(
            select(doc, "games"),
            Err(WatchError::InvalidPointer(_))
        ));
    }
}
