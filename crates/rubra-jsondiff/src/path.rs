//! Path patterns (`items[*].price`, `**.timestamp`) and the matcher that tracks
//! them while the comparison walks down, one step per level, with no allocation.

use std::fmt;
use std::str::FromStr;

/// One step of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pat {
    /// A member with this exact name.
    Key(String),
    /// `*`: any member name.
    AnyKey,
    /// `[*]`: any array element.
    AnyIndex,
    /// `**`: any number (zero or more) of steps of either kind.
    Any,
}

/// A path pattern, anchored at the document root.
///
/// Syntax: steps `.name`, `["any name"]`, `.*` (any member), `[*]` (any
/// element), `**` (any depth, including none). A leading `$` or `.` is optional:
/// `items[*].updated_at`, `.items[*].price`, `**.timestamp`, `$.a["b.c"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    steps: Vec<Pat>,
    text: String,
}

/// A pattern could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad path pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for PathPattern {
    type Err = PatternError;
    fn from_str(text: &str) -> Result<Self, PatternError> {
        let bad = |reason: &str| PatternError {
            pattern: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut s = text.trim();
        s = s.strip_prefix('$').unwrap_or(s);
        let mut steps = Vec::new();
        let mut first = true;
        while !s.is_empty() {
            if let Some(rest) = s.strip_prefix('[') {
                if let Some(rest) = rest.strip_prefix("*]") {
                    steps.push(Pat::AnyIndex);
                    s = rest;
                } else if rest.starts_with('"') {
                    let (name, rest) =
                        quoted(rest).ok_or_else(|| bad("unterminated quoted name"))?;
                    let rest = rest
                        .strip_prefix(']')
                        .ok_or_else(|| bad("expected ']' after a quoted name"))?;
                    steps.push(Pat::Key(name));
                    s = rest;
                } else {
                    return Err(bad("only [*] and [\"name\"] are allowed in brackets"));
                }
            } else {
                let rest = match s.strip_prefix('.') {
                    Some(r) => r,
                    None if first => s,
                    None => return Err(bad("expected '.' or '[' between steps")),
                };
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let name = &rest[..end];
                match name {
                    "" if end == rest.len() && steps.is_empty() => {}
                    "" => return Err(bad("empty step")),
                    "**" => steps.push(Pat::Any),
                    "*" => steps.push(Pat::AnyKey),
                    _ => steps.push(Pat::Key(name.to_owned())),
                }
                s = &rest[end..];
            }
            first = false;
        }
        if steps.len() > 63 {
            return Err(bad("at most 63 steps"));
        }
        Ok(PathPattern {
            steps,
            text: text.to_owned(),
        })
    }
}

fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

impl PathPattern {
    /// The pattern with a trailing `[*]` removed: `items[*]` names the array `items`
    /// when choosing an array mode.
    pub(crate) fn without_trailing_index(mut self) -> Self {
        if self.steps.last() == Some(&Pat::AnyIndex) {
            self.steps.pop();
        }
        self
    }
}

/// A step taken while walking a document.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index,
}

/// Pattern set compiled for walking: one bit mask of reached positions per pattern.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    pats: Vec<Vec<Pat>>,
}

/// Mask state handle: the index of a frame on the matcher stack, or dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State(u32);

impl State {
    /// No pattern can match here or below.
    pub(crate) const DEAD: State = State(u32::MAX);
    pub(crate) fn is_dead(self) -> bool {
        self == State::DEAD
    }
}

impl Matcher {
    pub(crate) fn new(patterns: impl IntoIterator<Item = PathPattern>) -> Self {
        Matcher {
            pats: patterns.into_iter().map(|p| p.steps).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pats.len()
    }

    fn close(steps: &[Pat], mut mask: u64) -> u64 {
        for (i, s) in steps.iter().enumerate() {
            if mask & (1 << i) != 0 && *s == Pat::Any {
                mask |= 1 << (i + 1);
            }
        }
        mask
    }

    /// Pushes the root frame; returns its state.
    pub(crate) fn root(&self, stack: &mut Vec<u64>) -> State {
        if self.pats.is_empty() {
            return State::DEAD;
        }
        let at = stack.len();
        stack.extend(self.pats.iter().map(|p| Self::close(p, 1)));
        State(at as u32)
    }

    /// Pushes the frame reached from `st` by `step`; dead when no pattern can still match.
    pub(crate) fn step(&self, stack: &mut Vec<u64>, st: State, step: Step<'_>) -> State {
        if st.is_dead() {
            return st;
        }
        let at = stack.len();
        let mut alive = false;
        for (p, steps) in self.pats.iter().enumerate() {
            let mask = stack[st.0 as usize + p];
            let mut next = 0u64;
            let mut m = mask;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                let Some(s) = steps.get(i) else { continue };
                let hit = match (s, step) {
                    (Pat::Any, _) => {
                        next |= 1 << i;
                        true
                    }
                    (Pat::Key(k), Step::Key(name)) => k == name,
                    (Pat::AnyKey, Step::Key(_)) => true,
                    (Pat::AnyIndex, Step::Index) => true,
                    _ => false,
                };
                if hit {
                    next |= 1 << (i + 1);
                }
            }
            let next = Self::close(steps, next);
            alive |= next != 0;
            stack.push(next);
        }
        if alive {
            State(at as u32)
        } else {
            stack.truncate(at);
            State::DEAD
        }
    }

    /// Indices of the patterns that match exactly at `st`.
    pub(crate) fn matches<'s>(
        &'s self,
        stack: &'s [u64],
        st: State,
    ) -> impl Iterator<Item = usize> + 's {
        let base = if st.is_dead() {
            None
        } else {
            Some(st.0 as usize)
        };
        self.pats.iter().enumerate().filter_map(move |(p, steps)| {
            let mask = stack[base? + p];
            (mask & (1 << steps.len()) != 0).then_some(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> PathPattern {
        s.parse().expect("valid pattern")
    }

    fn matches(p: &str, path: &[Step<'_>]) -> bool {
        let m = Matcher::new([pat(p)]);
        let mut stack = Vec::new();
        let mut st = m.root(&mut stack);
        for s in path {
            st = m.step(&mut stack, st, *s);
        }
        m.matches(&stack, st).next().is_some()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            pat("items[*].updated_at").steps,
            pat(".items[*].updated_at").steps
        );
        assert_eq!(
            pat("$.a[\"b.c\"]").steps,
            vec![Pat::Key("a".into()), Pat::Key("b.c".into())]
        );
        assert_eq!(
            pat("**.timestamp").steps,
            vec![Pat::Any, Pat::Key("timestamp".into())]
        );
        assert!(pat("").steps.is_empty());
        assert!(pat(".").steps.is_empty());
        assert!("a..b".parse::<PathPattern>().is_err());
        assert!("a[0]".parse::<PathPattern>().is_err());
    }

    #[test]
    fn wildcards_match_at_any_depth() {
        use Step::{Index as I, Key as K};
        assert!(matches("**.timestamp", &[K("timestamp")]));
        assert!(matches("**.timestamp", &[K("a"), I, K("timestamp")]));
        assert!(!matches("**.timestamp", &[K("timestamp"), K("x")]));
        assert!(matches(
            "items[*].updated_at",
            &[K("items"), I, K("updated_at")]
        ));
        assert!(!matches(
            "items[*].updated_at",
            &[K("x"), K("items"), I, K("updated_at")]
        ));
        assert!(matches("a.*.c", &[K("a"), K("b"), K("c")]));
        assert!(!matches("a.*.c", &[K("a"), I, K("c")]));
        assert!(matches("a.**", &[K("a"), I, I]));
        assert!(matches("a.**", &[K("a")]));
        assert!(matches("", &[]));
    }

    #[test]
    fn dead_states_stop_early() {
        let m = Matcher::new([pat("a.b")]);
        let mut stack = Vec::new();
        let st = m.root(&mut stack);
        let st = m.step(&mut stack, st, Step::Key("x"));
        assert!(st.is_dead());
        assert_eq!(stack.len(), 1);
    }
}
