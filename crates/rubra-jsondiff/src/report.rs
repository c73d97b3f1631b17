//! The result of a comparison and its three renderings: text for people, a JSON
//! list of differences, and an RFC 6902 JSON Patch.

use std::fmt::Write as _;

/// What happened at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Present only in the second document.
    Added,
    /// Present only in the first document.
    Removed,
    /// Present in both with different values.
    Changed,
}

impl Kind {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Changed => "changed",
        }
    }
}

/// One difference between the documents.
///
/// Paths read like `.items[3].price`: member names after a dot (or as
/// `["quoted"]`), array positions in brackets (the position in the first
/// document, or in the second for added elements), `[id=42]` for elements of a
/// keyed array, and `.` for the root.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// Where, as a readable path.
    pub path: String,
    /// Where, as a JSON Pointer (RFC 6901) into the document the value is in: array
    /// positions are those of the second document for an added value (all the way
    /// down), of the first otherwise, e.g. `/items/3/price`; `""` is the root.
    pub pointer: String,
    /// Added, removed or changed.
    pub kind: Kind,
    /// The old value as compact JSON (numbers and strings exactly as written).
    pub old: Option<String>,
    /// The new value as compact JSON.
    pub new: Option<String>,
    /// `new − old` when both are numbers.
    pub delta: Option<f64>,
}

/// An RFC 6902 operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `add`
    Add,
    /// `remove`
    Remove,
    /// `replace`
    Replace,
}

/// One operation of a JSON Patch; `path` is a JSON Pointer into the document as
/// it is when the operation runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchOp {
    /// The operation.
    pub op: Op,
    /// JSON Pointer (RFC 6901).
    pub path: String,
    /// The value for `add` and `replace`, as JSON text.
    pub value: Option<String>,
}

/// Everything a comparison found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The differences, in document order.
    pub differences: Vec<Difference>,
    /// Operations that turn the first document into one equal to the second
    /// (empty unless [`crate::Options::patch`] was set).
    pub patch: Vec<PatchOp>,
}

/// Writes `s` as a JSON string literal.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float in JSON: finite numbers as Rust prints them, others as `null`.
fn json_f64(out: &mut String, x: f64) {
    if x.is_finite() {
        let _ = write!(out, "{x:e}");
    } else {
        out.push_str("null");
    }
}

/// Two significant digits, the way people read small deltas: `1.9e-5`, `-2`, `0.25`.
pub(crate) fn short_f64(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        let s = format!("{x:.1e}");
        s.replace(".0e", "e")
    } else {
        let s = format!("{:.*}", if a >= 1.0 { 2 } else { 4 }, x);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    }
}

const SHORTEN_AT: usize = 160;

fn shorten(s: &str) -> String {
    if s.chars().count() <= SHORTEN_AT {
        return s.to_owned();
    }
    let cut: String = s.chars().take(SHORTEN_AT).collect();
    format!("{cut}…")
}

impl Report {
    /// True when no difference was found.
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }

    /// Lines for people: `.items[3].price: 1.000012 → 1.000031 (Δ 1.9e-5)`.
    /// With `color`, removed values are red, added green, paths bold.
    pub fn to_text(&self, color: bool) -> String {
        let (bold, red, green, reset) = if color {
            ("\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let mut out = String::new();
        for d in &self.differences {
            let old = d.old.as_deref().map(shorten).unwrap_or_default();
            let new = d.new.as_deref().map(shorten).unwrap_or_default();
            let _ = match d.kind {
                Kind::Changed => write!(
                    out,
                    "{bold}{}{reset}: {red}{old}{reset} → {green}{new}{reset}",
                    d.path
                ),
                Kind::Removed => write!(out, "{bold}{}{reset}: {red}- {old}{reset}", d.path),
                Kind::Added => write!(out, "{bold}{}{reset}: {green}+ {new}{reset}", d.path),
            };
            if let Some(x) = d.delta {
                let _ = write!(out, " (Δ {})", short_f64(x));
            }
            out.push('\n');
        }
        out
    }

    /// A JSON array of `{"path", "pointer", "kind", "old", "new", "delta"}` objects.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, d) in self.differences.iter().enumerate() {
            out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
            out.push_str("\"path\":");
            json_string(&mut out, &d.path);
            out.push_str(",\"pointer\":");
            json_string(&mut out, &d.pointer);
            let _ = write!(out, ",\"kind\":\"{}\"", d.kind.as_str());
            if let Some(v) = &d.old {
                let _ = write!(out, ",\"old\":{v}");
            }
            if let Some(v) = &d.new {
                let _ = write!(out, ",\"new\":{v}");
            }
            if let Some(x) = d.delta {
                out.push_str(",\"delta\":");
                json_f64(&mut out, x);
            }
            out.push('}');
        }
        out.push_str(if self.differences.is_empty() {
            "]\n"
        } else {
            "\n]\n"
        });
        out
    }

    /// The patch as RFC 6902 JSON text.
    pub fn patch_json(&self) -> String {
        let mut out = String::from("[");
        for (i, p) in self.patch.iter().enumerate() {
            out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
            let op = match p.op {
                Op::Add => "add",
                Op::Remove => "remove",
                Op::Replace => "replace",
            };
            let _ = write!(out, "\"op\":\"{op}\",\"path\":");
            json_string(&mut out, &p.path);
            if let Some(v) = &p.value {
                let _ = write!(out, ",\"value\":{v}");
            }
            out.push('}');
        }
        out.push_str(if self.patch.is_empty() {
            "]\n"
        } else {
            "\n]\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_floats() {
        assert_eq!(short_f64(1.8999999999991246e-5), "1.9e-5");
        assert_eq!(short_f64(-2.0), "-2");
        assert_eq!(short_f64(0.25), "0.25");
        assert_eq!(short_f64(1e7), "1e7");
        assert_eq!(short_f64(0.0), "0");
    }

    #[test]
    fn text_line_matches_the_spec_example() {
        let r = Report {
            differences: vec![Difference {
                path: ".items[3].price".into(),
                pointer: "/items/3/price".into(),
                kind: Kind::Changed,
                old: Some("1.000012".into()),
                new: Some("1.000031".into()),
                delta: Some(1.9e-5),
            }],
            patch: vec![],
        };
        assert_eq!(
            r.to_text(false),
            ".items[3].price: 1.000012 → 1.000031 (Δ 1.9e-5)\n"
        );
        assert!(r.to_json().contains(r#""kind":"changed","old":1.000012"#));
    }
}
