//! What counts as equal: array modes, ignored paths and tolerances, globally and
//! per path, and the policy file (TOML or JSON) that holds them.

use std::str::FromStr;

use crate::number::{Decimal, Tolerance};
use crate::parse::{Document, Node};
use crate::path::PathPattern;

/// How the elements of an array are matched.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ArrayMode {
    /// Order matters; insertions and deletions are found by a sequence diff.
    #[default]
    Ordered,
    /// Order and repetitions do not matter: each element must have an equal one on the other side.
    Set,
    /// Order does not matter, repetitions do.
    Multiset,
    /// Objects are matched by the value of this member; unkeyed elements as a multiset.
    Key(String),
}

impl FromStr for ArrayMode {
    type Err = String;
    /// `ordered`, `set`, `multiset` or `key:FIELD`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "ordered" => Ok(ArrayMode::Ordered),
            "set" => Ok(ArrayMode::Set),
            "multiset" | "bag" => Ok(ArrayMode::Multiset),
            other => match other
                .strip_prefix("key:")
                .or_else(|| other.strip_prefix("key="))
            {
                Some(f) if !f.is_empty() => Ok(ArrayMode::Key(f.to_owned())),
                _ => Err(format!(
                    "unknown array mode {other:?} (expected ordered, set, multiset or key:FIELD)"
                )),
            },
        }
    }
}

/// Comparison settings: the defaults plus rules for paths. Later rules win.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Tolerance for numbers where no path rule says otherwise.
    pub tolerance: Tolerance,
    /// Array mode where no path rule says otherwise.
    pub array_mode: ArrayMode,
    /// Paths left out of the comparison on both sides.
    pub ignore: Vec<PathPattern>,
    /// Array mode per path (the pattern names the array; a trailing `[*]` is allowed).
    pub arrays: Vec<(PathPattern, ArrayMode)>,
    /// Tolerance per path (for the numbers at and below the path).
    pub tolerances: Vec<(PathPattern, Tolerance)>,
    /// Stop at the first difference (for "are they equal?" questions).
    pub stop_at_first: bool,
    /// Also build an RFC 6902 patch turning the first document into the second.
    pub patch: bool,
}

/// A policy file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

/// A tree read from either TOML or JSON, so one reader serves both formats.
enum Conf {
    Str(String),
    Num(String),
    Bool,
    List(Vec<Conf>),
    Table(Vec<(String, Conf)>),
}

impl Conf {
    fn kind(&self) -> &'static str {
        match self {
            Conf::Str(_) => "a string",
            Conf::Num(_) => "a number",
            Conf::Bool => "a boolean",
            Conf::List(_) => "a list",
            Conf::Table(_) => "a table",
        }
    }

    fn from_toml(v: toml::Value) -> Conf {
        match v {
            toml::Value::String(s) => Conf::Str(s),
            toml::Value::Integer(i) => Conf::Num(i.to_string()),
            toml::Value::Float(f) => Conf::Num(format!("{f:e}")),
            toml::Value::Boolean(_) | toml::Value::Datetime(_) => Conf::Bool,
            toml::Value::Array(a) => Conf::List(a.into_iter().map(Conf::from_toml).collect()),
            toml::Value::Table(t) => Conf::Table(
                t.into_iter()
                    .map(|(k, v)| (k, Conf::from_toml(v)))
                    .collect(),
            ),
        }
    }

    fn from_json(d: &Document, id: u32) -> Conf {
        match d.node(id) {
            Node::Null | Node::Bool(_) => Conf::Bool,
            Node::Num(s) => Conf::Num(d.raw(s).to_owned()),
            Node::Str(s) => Conf::Str(d.text(s).into_owned()),
            Node::Arr(f, n) => Conf::List((f..f + n).map(|i| Conf::from_json(d, i)).collect()),
            Node::Obj(f, n) => Conf::Table(
                (f..f + n)
                    .map(|i| (d.key(i).into_owned(), Conf::from_json(d, i)))
                    .collect(),
            ),
        }
    }
}

fn decimal(key: &str, v: &Conf) -> Result<Decimal, PolicyError> {
    match v {
        Conf::Num(s) | Conf::Str(s) => Decimal::parse(s)
            .ok_or_else(|| PolicyError(format!("{key}: {s:?} is not a non-negative number"))),
        other => Err(PolicyError(format!(
            "{key}: expected a number, found {}",
            other.kind()
        ))),
    }
}

fn pattern(key: &str, s: &str) -> Result<PathPattern, PolicyError> {
    s.parse()
        .map_err(|e: crate::path::PatternError| PolicyError(format!("{key}: {e}")))
}

/// Reads `precision`/`abs`/`rel` from a table into a tolerance.
fn tolerance(key: &str, t: &[(String, Conf)], base: Tolerance) -> Result<Tolerance, PolicyError> {
    let mut tol = base;
    for (k, v) in t {
        match k.as_str() {
            "precision" => {
                let d = decimal(&format!("{key}.precision"), v)?;
                let places = match v {
                    Conf::Num(s) => s.parse::<u32>().ok(),
                    _ => None,
                };
                let places = places.filter(|p| *p <= 30).ok_or_else(|| {
                    PolicyError(format!("{key}.precision: {d} is not a whole number ≤ 30"))
                })?;
                tol.abs = Decimal::half_unit(places);
            }
            "abs" => tol.abs = decimal(&format!("{key}.abs"), v)?,
            "rel" => tol.rel = decimal(&format!("{key}.rel"), v)?,
            _ => {}
        }
    }
    Ok(tol)
}

impl Options {
    /// Adds the rules of a policy file; `name` ending in `.json` selects JSON, otherwise TOML.
    ///
    /// ```toml
    /// precision = 5            # or abs = 1e-6, rel = 1e-9
    /// array = "ordered"        # default mode: ordered, set, multiset, key:FIELD
    /// ignore = ["**.timestamp", "items[*].updated_at"]
    /// [arrays]
    /// "items" = "key:id"
    /// "tags" = "set"
    /// [tolerance]
    /// "**.price" = { abs = 0.01 }
    /// ```
    pub fn load_policy(&mut self, name: &str, text: &str) -> Result<(), PolicyError> {
        let conf = if name.ends_with(".json") {
            let d = Document::parse(text.to_owned()).map_err(|e| PolicyError(e.to_string()))?;
            Conf::from_json(&d, d.root)
        } else {
            let t: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| PolicyError(e.to_string().trim_end().to_owned()))?;
            Conf::from_toml(toml::Value::Table(t))
        };
        let Conf::Table(top) = conf else {
            return Err(PolicyError("the policy must be a table/object".into()));
        };
        self.tolerance = tolerance("policy", &top, self.tolerance)?;
        for (k, v) in &top {
            match (k.as_str(), v) {
                ("precision" | "abs" | "rel", _) => {}
                ("array", Conf::Str(s)) => self.array_mode = s.parse().map_err(PolicyError)?,
                ("ignore", Conf::List(items)) => {
                    for it in items {
                        let Conf::Str(s) = it else {
                            return Err(PolicyError("ignore: expected a list of strings".into()));
                        };
                        self.ignore.push(pattern("ignore", s)?);
                    }
                }
                ("ignore", Conf::Str(s)) => self.ignore.push(pattern("ignore", s)?),
                ("arrays", Conf::Table(t)) => {
                    for (p, m) in t {
                        let Conf::Str(m) = m else {
                            return Err(PolicyError(format!("arrays.{p}: expected a string")));
                        };
                        let mode = m
                            .parse()
                            .map_err(|e| PolicyError(format!("arrays.{p}: {e}")))?;
                        self.arrays.push((pattern("arrays", p)?, mode));
                    }
                }
                ("tolerance", Conf::Table(t)) => {
                    for (p, v) in t {
                        let key = format!("tolerance.{p}");
                        let tol = match v {
                            Conf::Table(inner) => tolerance(&key, inner, Tolerance::EXACT)?,
                            Conf::Num(_) | Conf::Str(_) => Tolerance {
                                abs: decimal(&key, v)?,
                                rel: Decimal::ZERO,
                            },
                            other => {
                                return Err(PolicyError(format!(
                                    "{key}: expected a table or a number, found {}",
                                    other.kind()
                                )));
                            }
                        };
                        self.tolerances.push((pattern("tolerance", p)?, tol));
                    }
                }
                (k, v) => {
                    return Err(PolicyError(format!(
                        "unknown key {k:?} ({}); expected precision, abs, rel, array, ignore, arrays, tolerance",
                        v.kind()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
precision = 3
array = "set"
ignore = ["**.timestamp"]
[arrays]
"items[*]" = "key:id"
[tolerance]
"**.price" = { abs = 0.01 }
"**.ratio" = 1e-9
"#;

    #[test]
    fn toml_and_json_policies_read_the_same() {
        let mut a = Options::default();
        a.load_policy("p.toml", TOML).expect("valid toml");
        let mut b = Options::default();
        b.load_policy(
            "p.json",
            r#"{"precision":3,"array":"set","ignore":["**.timestamp"],
                "arrays":{"items[*]":"key:id"},
                "tolerance":{"**.price":{"abs":0.01},"**.ratio":1e-9}}"#,
        )
        .expect("valid json");
        for o in [&a, &b] {
            assert_eq!(o.tolerance, Tolerance::places(3));
            assert_eq!(o.array_mode, ArrayMode::Set);
            assert_eq!(o.ignore.len(), 1);
            assert_eq!(o.arrays[0].1, ArrayMode::Key("id".into()));
            assert_eq!(o.tolerances.len(), 2);
            assert_eq!(
                o.tolerances[0].1.abs,
                Decimal::parse("0.01").expect("valid")
            );
        }
    }

    #[test]
    fn policy_errors_name_the_key() {
        let mut o = Options::default();
        let e = o
            .load_policy("p.toml", "[arrays]\nitems = \"sorted\"")
            .expect_err("bad");
        assert!(e.0.contains("arrays.items"), "{e}");
        let e = o.load_policy("p.toml", "colour = 1").expect_err("bad");
        assert!(e.0.contains("colour"), "{e}");
        let e = o.load_policy("p.json", "{").expect_err("bad");
        assert!(e.0.contains("line 1"), "{e}");
    }

    #[test]
    fn array_modes_parse() {
        assert_eq!("key:id".parse(), Ok(ArrayMode::Key("id".into())));
        assert_eq!("multiset".parse(), Ok(ArrayMode::Multiset));
        assert!("key:".parse::<ArrayMode>().is_err());
    }
}
