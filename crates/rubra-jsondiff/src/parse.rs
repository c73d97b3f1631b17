//! JSON parsing into a flat arena: every number and string is kept as written
//! (a span of the input), so nothing is lost to float64 and nesting costs no stack.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting accepted; deeper input is refused with a [`ParseError`]
/// ([`ParseError::is_too_deep`]) instead of being walked.
///
/// Parsing itself is iterative, but comparing, hashing, patching and printing a
/// value recurse once per level; this bound keeps every one of them within a
/// few megabytes of stack (measured: at most about 2 KiB per level in release
/// builds, 7 KiB in debug builds), and the comparison of a document deeper than
/// a couple of hundred levels runs on a thread whose stack is sized from its depth.
/// Real documents rarely nest past a few dozen levels; JSONTestSuite's
/// `i_structure_500_nested_arrays.json` still parses.
pub const MAX_DEPTH: usize = 512;

/// A JSON text could not be parsed: what was wrong and where (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub column: usize,
    /// What was expected or found.
    pub message: String,
}

impl ParseError {
    /// Whether the text was refused for nesting deeper than [`MAX_DEPTH`] (it
    /// may be valid JSON otherwise).
    pub fn is_too_deep(&self) -> bool {
        self.message == TOO_DEEP
    }
}

/// A byte range of the source. For strings the top bit of `len` says whether the
/// raw text holds escapes, so the common case compares raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    len: u32,
}

const ESCAPED: u32 = 1 << 31;

impl Span {
    fn new(start: usize, len: usize, escaped: bool) -> Self {
        // Lengths are below 2^31: inputs are limited to 2 GiB in `parse`.
        Span {
            start: start as u32,
            len: len as u32 | if escaped { ESCAPED } else { 0 },
        }
    }
    pub(crate) fn escaped(self) -> bool {
        self.len & ESCAPED != 0
    }
    fn range(self) -> std::ops::Range<usize> {
        let s = self.start as usize;
        s..s + (self.len & !ESCAPED) as usize
    }
}

/// One value in the arena. Containers name their children as `first..first+len`
/// in [`Document::nodes`]; object members have their names at the same index of
/// [`Document::keys`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Num(Span),
    Str(Span),
    Arr(u32, u32),
    Obj(u32, u32),
}

/// The text a document was parsed from: owned, or a mapped file.
enum Source {
    Owned(Box<str>),
    /// Only the command line reads files.
    #[cfg(feature = "cli")]
    Mapped(crate::memory::MappedText),
}

impl Source {
    #[inline]
    fn as_str(&self) -> &str {
        match self {
            Source::Owned(s) => s,
            #[cfg(feature = "cli")]
            Source::Mapped(m) => m.as_str(),
        }
    }
}

/// A parsed JSON document. Cheap to compare, keeps the source text.
pub struct Document {
    src: Source,
    pub(crate) nodes: Vec<Node>,
    pub(crate) keys: Vec<Span>,
    pub(crate) root: u32,
    depth: usize,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("bytes", &self.src().len())
            .field("nodes", &self.nodes.len())
            .field("depth", &self.depth)
            .finish()
    }
}

impl std::str::FromStr for Document {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Document::parse(s.to_owned())
    }
}

impl Document {
    /// Parses a JSON text (RFC 8259). A leading byte-order mark is skipped.
    /// Duplicate member names: the last occurrence wins, as in most parsers.
    pub fn parse(text: String) -> Result<Self, ParseError> {
        Parser::run(Source::Owned(text.into_boxed_str()))
    }

    /// Reads and parses a file: large regular files are mapped rather than
    /// copied (see the `memory` module). The outer error is the file's, the
    /// inner one the JSON's.
    #[cfg(feature = "cli")]
    pub(crate) fn read_file(path: &std::path::Path) -> std::io::Result<Result<Self, ParseError>> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() < MAP_FROM {
            let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
            std::io::Read::read_to_end(&mut &file, &mut bytes)?;
            return Ok(Self::parse_bytes(bytes));
        }
        Ok(match crate::memory::MappedText::map(&file)? {
            Ok(text) => Parser::run(Source::Mapped(text)),
            Err((bytes, at)) => Err(error_at(&bytes, at, "invalid UTF-8")),
        })
    }

    /// Parses raw bytes, reporting invalid UTF-8 with its line and column.
    pub fn parse_bytes(bytes: Vec<u8>) -> Result<Self, ParseError> {
        match String::from_utf8(bytes) {
            Ok(s) => Self::parse(s),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                Err(error_at(e.as_bytes(), at, "invalid UTF-8"))
            }
        }
    }

    /// Deepest nesting level in the document (a scalar root is depth 0).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Number of JSON values in the document.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a document holds at least its root value.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Size of the source text in bytes.
    pub fn source_len(&self) -> usize {
        self.src().len()
    }

    #[inline]
    fn src(&self) -> &str {
        self.src.as_str()
    }

    /// The source text as bytes.
    #[inline]
    pub(crate) fn source_bytes(&self) -> &[u8] {
        self.src().as_bytes()
    }

    pub(crate) fn node(&self, id: u32) -> Node {
        self.nodes[id as usize]
    }

    /// Raw text of a span: a number literal, or a string's inside without quotes.
    pub(crate) fn raw(&self, span: Span) -> &str {
        &self.src()[span.range()]
    }

    /// Whether member `x` of this document and member `y` of `other` have the
    /// same name; raw bytes when neither is escaped (no UTF-8 boundary checks).
    #[inline]
    pub(crate) fn same_key(&self, x: u32, other: &Document, y: u32) -> bool {
        let (kx, ky) = (self.keys[x as usize], other.keys[y as usize]);
        if kx.escaped() || ky.escaped() {
            self.key(x) == other.key(y)
        } else {
            bytes_eq(
                &self.src().as_bytes()[kx.range()],
                &other.src().as_bytes()[ky.range()],
            )
        }
    }

    /// Feeds member `x`'s decoded name into a hasher.
    #[inline]
    pub(crate) fn hash_key(&self, x: u32, h: &mut impl std::hash::Hasher) {
        let k = self.keys[x as usize];
        if k.escaped() {
            h.write(self.key(x).as_bytes());
        } else {
            h.write(&self.src().as_bytes()[k.range()]);
        }
    }

    /// A string's decoded value.
    pub(crate) fn text(&self, span: Span) -> Cow<'_, str> {
        let raw = self.raw(span);
        if span.escaped() {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// Decoded name of the member stored at `id`.
    pub(crate) fn key(&self, id: u32) -> Cow<'_, str> {
        self.text(self.keys[id as usize])
    }

    /// Compact JSON of one value; numbers and strings exactly as written.
    pub(crate) fn write_json(&self, id: u32, out: &mut String) {
        match self.node(id) {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Node::Num(s) => out.push_str(self.raw(s)),
            Node::Str(s) => {
                out.push('"');
                out.push_str(self.raw(s));
                out.push('"');
            }
            Node::Arr(first, len) => {
                out.push('[');
                for i in first..first + len {
                    if i > first {
                        out.push(',');
                    }
                    self.write_json(i, out);
                }
                out.push(']');
            }
            Node::Obj(first, len) => {
                out.push('{');
                for i in first..first + len {
                    if i > first {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(self.raw(self.keys[i as usize]));
                    out.push_str("\":");
                    self.write_json(i, out);
                }
                out.push('}');
            }
        }
    }

    /// Compact JSON text of the value `id`.
    pub(crate) fn json(&self, id: u32) -> String {
        let mut s = String::new();
        self.write_json(id, &mut s);
        s
    }
}

/// Decodes the escapes of a validated JSON string body. Lone surrogates become U+FFFD.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex4(&mut chars);
                if (0xD800..0xDC00).contains(&hi) {
                    let mut look = chars.clone();
                    if look.next() == Some('\\') && look.next() == Some('u') {
                        let lo = hex4(&mut look);
                        if (0xDC00..0xE000).contains(&lo) {
                            chars = look;
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                            continue;
                        }
                    }
                }
                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
            }
            Some(c) => out.push(c),
            None => {}
        }
    }
    out
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    (0..4).fold(0, |acc, _| {
        acc * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0)
    })
}

fn error_at(bytes: &[u8], at: usize, message: impl Into<String>) -> ParseError {
    let at = at.min(bytes.len());
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Count characters, not bytes: continuation bytes do not start a character.
    let column = before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count()
        + 1;
    ParseError {
        line,
        column,
        message: message.into(),
    }
}

struct Frame {
    is_obj: bool,
    start: usize,
    key: Span,
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

const NO_KEY: Span = Span { start: 0, len: 0 };

/// Files from this size on are mapped instead of read.
#[cfg(feature = "cli")]
const MAP_FROM: u64 = 1 << 20;

/// What parsing produces besides the source: nodes, member names, root, depth.
type Parsed = (Vec<Node>, Vec<Span>, u32, usize);

/// Why parsing failed; the parser's position says where. Two words, so results
/// travel in registers (a [`ParseError`] is built once, at the end).
type Fail = &'static str;

/// The message for nesting past [`MAX_DEPTH`] (a test checks the number).
const TOO_DEEP: Fail = "nesting deeper than the depth limit of 512 levels is not supported";

impl Parser<'_> {
    fn run(src: Source) -> Result<Document, ParseError> {
        let (nodes, keys, root, depth) = Self::parse(src.as_str())?;
        Ok(Document {
            src,
            nodes,
            keys,
            root,
            depth,
        })
    }

    fn parse(text: &str) -> Result<Parsed, ParseError> {
        if text.len() >= (1 << 31) {
            return Err(ParseError {
                line: 1,
                column: 1,
                message: "inputs of 2 GiB or more are not supported".into(),
            });
        }
        let b = text.as_bytes();
        let mut p = Parser { b, i: 0 };
        if b.starts_with(&[0xEF, 0xBB, 0xBF]) {
            p.i = 3;
        }
        // The failure's position is where the parser stopped.
        p.tree(text).map_err(|message| error_at(b, p.i, message))
    }

    fn tree(&mut self, text: &str) -> Result<Parsed, Fail> {
        let p = self;
        let b = p.b;
        // Every value takes at least two bytes of input (one plus a separator), so
        // this never reallocates; pages of the reserve that stay unused are never
        // touched, so they cost address space, not memory.
        let cap = b.len() / 2 + 2;
        let mut nodes: Vec<Node> = Vec::with_capacity(cap);
        let mut keys: Vec<Span> = Vec::with_capacity(cap);
        // Members of the open containers, names and values apart so that closing
        // a container copies each list in one go.
        let mut scratch_keys: Vec<Span> = Vec::new();
        let mut scratch: Vec<Node> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut depth = 0usize;
        let root;
        'value: loop {
            p.ws();
            let mut node = match p.peek() {
                Some(b'{') | Some(b'[') => {
                    let is_obj = p.b[p.i] == b'{';
                    if stack.len() >= MAX_DEPTH {
                        // The position named is the bracket that goes too deep.
                        return Err(TOO_DEEP);
                    }
                    p.i += 1;
                    stack.push(Frame {
                        is_obj,
                        start: scratch.len(),
                        key: NO_KEY,
                    });
                    depth = depth.max(stack.len());
                    p.ws();
                    let close = if is_obj { b'}' } else { b']' };
                    if p.peek() == Some(close) {
                        p.i += 1;
                        stack.pop();
                        let first = nodes.len() as u32;
                        if is_obj {
                            Node::Obj(first, 0)
                        } else {
                            Node::Arr(first, 0)
                        }
                    } else {
                        if is_obj {
                            let k = p.member_name()?;
                            if let Some(f) = stack.last_mut() {
                                f.key = k;
                            }
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    p.i += 1;
                    Node::Str(p.string()?)
                }
                Some(b't') => p.literal("true", Node::Bool(true))?,
                Some(b'f') => p.literal("false", Node::Bool(false))?,
                Some(b'n') => p.literal("null", Node::Null)?,
                Some(b'-' | b'0'..=b'9') => Node::Num(p.number()?),
                Some(_) => return Err("expected a JSON value"),
                None => return Err("unexpected end of input, expected a value"),
            };
            // Attach the finished value to its container, closing containers as we go.
            loop {
                let Some(frame) = stack.last_mut() else {
                    nodes.push(node);
                    keys.push(NO_KEY);
                    root = (nodes.len() - 1) as u32;
                    break 'value;
                };
                scratch_keys.push(frame.key);
                scratch.push(node);
                p.ws();
                match p.peek() {
                    Some(b',') => {
                        p.i += 1;
                        if frame.is_obj {
                            p.ws();
                            frame.key = p.member_name()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == if frame.is_obj { b'}' } else { b']' } => {
                        p.i += 1;
                        let is_obj = frame.is_obj;
                        let start = frame.start;
                        stack.pop();
                        if is_obj {
                            dedup_members(text, &mut scratch_keys, &mut scratch, start);
                        }
                        let first = nodes.len() as u32;
                        let len = (scratch.len() - start) as u32;
                        keys.extend_from_slice(&scratch_keys[start..]);
                        nodes.extend_from_slice(&scratch[start..]);
                        scratch_keys.truncate(start);
                        scratch.truncate(start);
                        node = if is_obj {
                            Node::Obj(first, len)
                        } else {
                            Node::Arr(first, len)
                        };
                    }
                    _ => {
                        return Err(if frame.is_obj {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        });
                    }
                }
            }
        }
        p.ws();
        if p.i < p.b.len() {
            return Err("trailing characters after the JSON value");
        }
        nodes.shrink_to_fit();
        keys.shrink_to_fit();
        Ok((nodes, keys, root, depth))
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Node, Fail> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(node)
        } else {
            Err("expected a JSON value")
        }
    }

    fn member_name(&mut self) -> Result<Span, Fail> {
        if self.peek() != Some(b'"') {
            return Err("expected a member name in double quotes");
        }
        self.i += 1;
        let key = self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err("expected ':' after the member name");
        }
        self.i += 1;
        Ok(key)
    }

    /// Parses a string body; `self.i` is just past the opening quote.
    fn string(&mut self) -> Result<Span, Fail> {
        let start = self.i;
        let mut escaped = false;
        loop {
            // Skip plain bytes eight at a time when none of them needs a look.
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let w = u64::from_le_bytes([
                    chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
                ]);
                let special = specials(w);
                if special != 0 {
                    // The lowest flagged byte is exactly the first special one.
                    self.i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    let span = Span::new(start, self.i - start, escaped);
                    self.i += 1;
                    return Ok(span);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                                    return Err("invalid \\u escape");
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err("invalid escape in string"),
                    }
                }
                Some(c) if c < 0x20 => {
                    return Err("control character in string (must be escaped)");
                }
                Some(_) => self.i += 1,
                None => return Err("unterminated string"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - s
    }

    fn number(&mut self) -> Result<Span, Fail> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err("leading zeros are not allowed in numbers");
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err("expected a digit after the decimal point");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err("expected a digit in the exponent");
            }
        }
        Ok(Span::new(start, self.i - start, false))
    }
}

/// Byte equality; short slices (member names, most strings) are compared
/// inline instead of through a `memcmp` call.
#[inline]
pub(crate) fn bytes_eq(x: &[u8], y: &[u8]) -> bool {
    if x.len() != y.len() {
        return false;
    }
    if x.len() > 16 {
        return x == y;
    }
    x.iter().zip(y).all(|(p, q)| p == q)
}

/// High bits set in the bytes that are `"`, `\\` or a control character; the
/// lowest set bit is exact (borrows only disturb the bytes above a match).
#[inline]
fn specials(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let quote = zero(w ^ (LO * b'"' as u64));
    let backslash = zero(w ^ (LO * b'\\' as u64));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    quote | backslash | control
}

/// Keeps only the last occurrence of each member name among the members
/// `start..` of the open object (names in `keys`, values in `vals`).
fn dedup_members(src: &str, keys: &mut Vec<Span>, vals: &mut Vec<Node>, start: usize) {
    let members = &keys[start..];
    let n = members.len();
    if n < 2 {
        return;
    }
    let name = |s: Span| -> Cow<'_, str> {
        if s.escaped() {
            Cow::Owned(unescape(&src[s.range()]))
        } else {
            Cow::Borrowed(&src[s.range()])
        }
    };
    let raw = |s: Span| &src.as_bytes()[s.range()];
    let any_escaped = members.iter().any(|k| k.escaped());
    let dup = if n <= 12 && !any_escaped {
        (1..n).any(|j| {
            let kj = raw(members[j]);
            members[..j].iter().any(|&k| bytes_eq(raw(k), kj))
        })
    } else {
        let mut names: Vec<Cow<'_, str>> = members.iter().map(|&k| name(k)).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    };
    if !dup {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let mut keep = vec![false; n];
    for j in (0..n).rev() {
        keep[j] = seen.insert(name(members[j]).into_owned());
    }
    // Entries before `start` belong to outer containers and are always kept.
    let kept = |j: usize| j < start || keep[j - start];
    let mut j = 0;
    keys.retain(|_| {
        j += 1;
        kept(j - 1)
    });
    let mut j = 0;
    vals.retain(|_| {
        j += 1;
        kept(j - 1)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Document, ParseError> {
        Document::parse(s.to_owned())
    }

    #[test]
    fn parses_and_writes_back_compact() {
        let d = parse(r#" { "a" : [1, 2.50, -3e2, true, null], "b\n": "x\"y", "c": {} } "#)
            .expect("valid");
        assert_eq!(
            d.json(d.root),
            r#"{"a":[1,2.50,-3e2,true,null],"b\n":"x\"y","c":{}}"#
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("{\n  \"a\": 1,\n  \"b\": tru\n}").expect_err("invalid");
        assert_eq!((e.line, e.column), (3, 8));
        let e = parse("[1, 2").expect_err("invalid");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("expected"), "{e}");
        assert!(parse("01").is_err());
        assert!(parse("1.").is_err());
        assert!(parse("\"a\tb\"").is_err());
        assert!(parse("[1] x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn duplicate_member_names_keep_the_last() {
        let d = parse(r#"{"a":1,"b":2,"a":3}"#).expect("valid");
        assert_eq!(d.json(d.root), r#"{"b":2,"a":3}"#);
        // Inside open outer containers, whose members must all stay.
        let d = parse(
            r#"{"x":{"a":1,"a":2},"y":[{"b":1,"c":[2],"b":3}],"z":{"\u0061":1,"a":4},"x":{"a":5}}"#,
        )
        .expect("valid");
        assert_eq!(
            d.json(d.root),
            r#"{"y":[{"c":[2],"b":3}],"z":{"a":4},"x":{"a":5}}"#
        );
    }

    #[test]
    fn deep_nesting_parses_without_recursion() {
        let s = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let d = parse(&s).expect("valid");
        assert_eq!(d.depth(), MAX_DEPTH);
        let s = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let e = parse(&s).expect_err("too deep");
        assert!(e.is_too_deep(), "{e}");
        assert_eq!((e.line, e.column), (1, MAX_DEPTH + 1));
        assert!(TOO_DEEP.contains(&MAX_DEPTH.to_string()));
        assert!(!parse("[1,]").expect_err("invalid").is_too_deep());
        // JSONTestSuite: n_structure_100000_opening_arrays is refused at the limit,
        // i_structure_500_nested_arrays is accepted.
        assert!(parse(&"[".repeat(100_000)).expect_err("open").is_too_deep());
        assert!(parse(&("[".repeat(500) + &"]".repeat(500))).is_ok());
    }

    #[test]
    fn unescapes_surrogate_pairs() {
        assert_eq!(unescape(r"\ud83d\ude00 \u00e9\n"), "😀 é\n");
        assert_eq!(unescape(r"\ud83d"), "\u{FFFD}");
    }

    #[test]
    fn swar_finds_specials() {
        let first = |b: &[u8; 8]| match specials(u64::from_le_bytes(*b)) {
            0 => None,
            m => Some(m.trailing_zeros() / 8),
        };
        assert_eq!(first(b"abcdefgh"), None);
        assert_eq!(first(b"abc\"efgh"), Some(3));
        assert_eq!(first(b"abcdefg\\"), Some(7));
        assert_eq!(first(b"\nbcdefgh"), Some(0));
        assert_eq!(first(b"a\x00\"\x01efgh"), Some(1));
        assert_eq!(first(b"\xc3\xa9cdefgh"), None);
    }
}
