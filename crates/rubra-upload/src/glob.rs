//! A tiny glob matcher for `--include`/`--exclude`: `*`, `**`, `?` and `[...]`.
//!
//! A pattern without `/` matches the file name anywhere in the tree (like
//! `.gitignore`); one with `/` matches the path relative to the upload root.

/// A parsed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    anchored: bool,
}

/// A pattern that cannot be parsed (an unclosed `[`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("bad glob {0:?}: unclosed '['")]
pub struct GlobError(pub String);

impl Glob {
    /// Parses `pattern`.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let chars: Vec<char> = pattern.trim_start_matches("./").chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '[' {
                match chars[i + 1..].iter().position(|&c| c == ']') {
                    Some(p) => i += p + 2,
                    None => return Err(GlobError(pattern.to_owned())),
                }
            } else {
                i += 1;
            }
        }
        let anchored = chars.contains(&'/');
        Ok(Glob {
            pattern: chars,
            anchored,
        })
    }

    /// Whether `rel` (a `/`-separated path relative to the root) matches.
    pub fn matches(&self, rel: &str) -> bool {
        let subject = if self.anchored {
            rel
        } else {
            rel.rsplit('/').next().unwrap_or(rel)
        };
        let s: Vec<char> = subject.chars().collect();
        match_at(&self.pattern, &s)
    }
}

fn match_at(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches no folder at all.
            let rest = &p[2..];
            if rest.first() == Some(&'/') && match_at(&rest[1..], s) {
                return true;
            }
            (0..=s.len()).any(|k| match_at(rest, &s[k..]))
        }
        Some('*') => {
            let rest = &p[1..];
            for k in 0..=s.len() {
                if match_at(rest, &s[k..]) {
                    return true;
                }
                if s.get(k) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Some('?') => s.first().is_some_and(|&c| c != '/') && match_at(&p[1..], &s[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|&c| c == ']').map(|x| x + 1) else {
                return false;
            };
            let Some(&c) = s.first() else { return false };
            let mut set = &p[1..close];
            let negate = matches!(set.first(), Some('!') | Some('^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && c != '/' && match_at(&p[close + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && match_at(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).expect("valid").matches(s)
    }

    #[test]
    fn name_patterns_match_anywhere() {
        assert!(m("*.png", "a/b/c.png"));
        assert!(m("*.png", "c.png"));
        assert!(!m("*.png", "c.jpg"));
        assert!(m("img_??.jpg", "x/img_01.jpg"));
        assert!(m("[ab]*.gif", "b1.gif"));
        assert!(!m("[!ab]*.gif", "b1.gif"));
        assert!(m("[0-9]*", "7up"));
    }

    #[test]
    fn path_patterns_are_anchored() {
        assert!(m("raw/*.png", "raw/x.png"));
        assert!(!m("raw/*.png", "raw/sub/x.png"));
        assert!(m("raw/**/*.png", "raw/sub/deep/x.png"));
        assert!(m("raw/**/*.png", "raw/x.png"));
        assert!(m("**/thumbs/*", "a/thumbs/x"));
        assert!(m("**/thumbs/*", "thumbs/x"));
        assert!(!m("raw/*", "other/raw/x"));
    }

    #[test]
    fn unclosed_bracket_is_an_error() {
        assert!(Glob::new("[abc").is_err());
    }
}
