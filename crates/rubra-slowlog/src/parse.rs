//! Turns one log line into a span close record, accepting rubra's own format
//! (`"kind":"span_close"`, see `rubra-telemetry`) and, as a fallback, tracing-subscriber's
//! `FmtSpan::CLOSE` JSON (`"message":"close","time.busy":"1.2ms","time.idle":"3µs"`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::timefmt::{Timestamp, parse_duration, parse_rfc3339};

/// One closed span, as read from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpanClose<'a> {
    pub name: Cow<'a, str>,
    pub target: Cow<'a, str>,
    pub ts: Option<Timestamp>,
    pub span_id: Option<u64>,
    pub parent_id: Option<u64>,
    pub busy_ns: u64,
    pub idle_ns: u64,
    pub wall_ns: u64,
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A span close: counted.
    Close(SpanClose<'a>),
    /// Valid JSON that is not a span close (an event, a slow-span warning): skipped.
    Other,
    /// Not usable: counted as malformed, with the reason.
    Malformed(&'static str),
}

/// The fields of rubra's own format that matter; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Rubra<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target: Option<Cow<'a, str>>,
    #[serde(default)]
    span_id: Option<u64>,
    #[serde(default)]
    parent_id: Option<u64>,
    #[serde(default)]
    busy_ns: Option<u64>,
    #[serde(default)]
    idle_ns: Option<u64>,
    #[serde(default)]
    wall_ns: Option<u64>,
}

/// Parses one line (without its newline).
pub(crate) fn parse_line(line: &[u8]) -> Parsed<'_> {
    match serde_json::from_slice::<Rubra<'_>>(line) {
        Ok(r) => match r.kind.as_deref() {
            Some("span_close") => rubra_close(r),
            Some(_) => Parsed::Other,
            None => fallback(line),
        },
        Err(e) if e.is_data() => fallback(line),
        Err(_) => Parsed::Malformed("not valid JSON"),
    }
}

fn rubra_close(r: Rubra<'_>) -> Parsed<'_> {
    let Some(name) = r.name else {
        return Parsed::Malformed("span_close without name");
    };
    let (busy, idle, wall) = match (r.busy_ns, r.idle_ns, r.wall_ns) {
        (Some(b), Some(i), Some(w)) => (b, i, w),
        (Some(b), None, Some(w)) => (b, w.saturating_sub(b), w),
        (Some(b), Some(i), None) => (b, i, b.saturating_add(i)),
        (None, _, Some(w)) => (w, 0, w),
        _ => return Parsed::Malformed("span_close without wall_ns"),
    };
    Parsed::Close(SpanClose {
        name,
        target: r.target.unwrap_or(Cow::Borrowed("")),
        ts: r.ts.as_deref().and_then(parse_rfc3339),
        span_id: r.span_id,
        parent_id: r.parent_id,
        busy_ns: busy,
        idle_ns: idle,
        wall_ns: wall,
    })
}

/// tracing-subscriber's JSON with `FmtSpan::CLOSE`, nested (`fields`, `span`) or flattened.
fn fallback(line: &[u8]) -> Parsed<'static> {
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return Parsed::Malformed("not valid JSON");
    };
    let Some(obj) = v.as_object() else {
        return Parsed::Malformed("not a JSON object");
    };
    match obj.get("kind").and_then(Value::as_str) {
        Some("span_close") => {
            return Parsed::Malformed("span_close with a field of the wrong type");
        }
        Some(_) => return Parsed::Other,
        None => {}
    }
    let fields = obj.get("fields").and_then(Value::as_object);
    let get = |k: &str| fields.and_then(|f| f.get(k)).or_else(|| obj.get(k));
    if get("message").and_then(Value::as_str) != Some("close") {
        return Parsed::Other;
    }
    let busy = get("time.busy").and_then(Value::as_str).map(parse_duration);
    let idle = get("time.idle").and_then(Value::as_str).map(parse_duration);
    let (busy, idle) = match (busy, idle) {
        (Some(Some(b)), Some(Some(i))) => (b, i),
        (Some(Some(b)), None) => (b, 0),
        (None, None) => return Parsed::Other,
        _ => return Parsed::Malformed("close event with unreadable time.busy/time.idle"),
    };
    let name = obj
        .get("span")
        .and_then(|s| s.get("name"))
        .or_else(|| get("span.name"))
        .or_else(|| {
            obj.get("spans")
                .and_then(Value::as_array)
                .and_then(|a| a.last())
                .and_then(|s| s.get("name"))
        })
        .and_then(Value::as_str);
    let Some(name) = name else {
        return Parsed::Malformed("close event without a span name");
    };
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    Parsed::Close(SpanClose {
        name: Cow::Owned(name.to_owned()),
        target: Cow::Owned(str_of("target").unwrap_or_default()),
        ts: obj
            .get("timestamp")
            .or_else(|| obj.get("ts"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339),
        span_id: None,
        parent_id: None,
        busy_ns: busy,
        idle_ns: idle,
        wall_ns: busy.saturating_add(idle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rubra_span_close() {
        let line = br#"{"ts":"2026-01-01T00:00:00.000001Z","level":"INFO","kind":"span_close","name":"insert","target":"rubra_store::sqlite","file":"a.rs","line":3,"span_id":9,"parent_id":4,"busy_ns":10,"idle_ns":5,"wall_ns":15,"fields":{"message":7,"x":[1,{"y":"z"}]}}"#;
        let Parsed::Close(c) = parse_line(line) else {
            panic!("not a close")
        };
        assert_eq!(c.name, "insert");
        assert_eq!(c.target, "rubra_store::sqlite");
        assert_eq!((c.span_id, c.parent_id), (Some(9), Some(4)));
        assert_eq!((c.busy_ns, c.idle_ns, c.wall_ns), (10, 5, 15));
    }

    #[test]
    fn events_and_slow_lines_are_other() {
        assert_eq!(
            parse_line(br#"{"kind":"event","message":"hi","span":"x"}"#),
            Parsed::Other
        );
        assert_eq!(
            parse_line(br#"{"kind":"slow_span","name":"x","wall_ns":1}"#),
            Parsed::Other
        );
        assert_eq!(
            parse_line(br#"{"level":"INFO","fields":{"message":"hi"}}"#),
            Parsed::Other
        );
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            parse_line(b"{\"kind\":\"span_close\""),
            Parsed::Malformed(_)
        ));
        assert!(matches!(parse_line(b"hello"), Parsed::Malformed(_)));
        assert!(matches!(parse_line(b"[1,2]"), Parsed::Malformed(_)));
        assert!(matches!(
            parse_line(br#"{"kind":"span_close","name":"x"}"#),
            Parsed::Malformed(_)
        ));
        assert!(matches!(
            parse_line(br#"{"kind":"span_close","name":5,"wall_ns":1}"#),
            Parsed::Malformed(_)
        ));
    }

    #[test]
    fn tracing_fmt_close_nested_and_flattened() {
        let nested = r#"{"timestamp":"2026-01-01T00:00:00.5Z","level":"INFO","fields":{"message":"close","time.busy":"1.50ms","time.idle":"3.00µs"},"target":"app::db","span":{"id":3,"name":"query"},"spans":[{"name":"req"}]}"#;
        let Parsed::Close(c) = parse_line(nested.as_bytes()) else {
            panic!("not a close")
        };
        assert_eq!((c.name.as_ref(), c.target.as_ref()), ("query", "app::db"));
        assert_eq!(
            (c.busy_ns, c.idle_ns, c.wall_ns),
            (1_500_000, 3_000, 1_503_000)
        );
        assert_eq!(c.ts, "2026-01-01T00:00:00.5Z".parse().ok());
        let flat = r#"{"timestamp":"x","message":"close","time.busy":"2ms","time.idle":"1ms","span.name":"flat","target":"t"}"#;
        let Parsed::Close(c) = parse_line(flat.as_bytes()) else {
            panic!("not a close")
        };
        assert_eq!((c.name.as_ref(), c.wall_ns), ("flat", 3_000_000));
    }
}
