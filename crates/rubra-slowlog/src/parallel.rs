//! Parsing on several threads while keeping the aggregation in input order (a parent's self
//! time needs its children's closes first): the calling thread cuts the input into ~1 MiB
//! blocks of whole lines, workers parse them, and results are applied in block order. At
//! most [`IN_FLIGHT_PER_WORKER`] blocks per worker exist at once, so memory stays bounded.

use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::sync::{Mutex, PoisonError, mpsc};

use crate::input::{MAX_LINE_BYTES, for_each_line};
use crate::parse::{Parsed, parse_line};
use crate::report::Analyzer;
use crate::timefmt::Timestamp;

const BLOCK_BYTES: usize = 1 << 20;
const IN_FLIGHT_PER_WORKER: usize = 3;

/// Whole lines, each followed by `\n`; overlong lines are empty placeholders listed by index.
struct Block {
    seq: u64,
    data: Vec<u8>,
    lines: u32,
    overlong: Vec<u32>,
}

impl Block {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            data: Vec::with_capacity(BLOCK_BYTES + 4096),
            lines: 0,
            overlong: Vec::new(),
        }
    }
}

/// A string of a parsed line: a range of the block when it needed no unescaping.
pub(crate) enum Text {
    Range(usize, usize),
    Owned(Box<str>),
}

impl Text {
    pub(crate) fn get<'a>(&'a self, data: &'a [u8]) -> &'a str {
        match self {
            Self::Range(a, b) => std::str::from_utf8(&data[*a..*b]).unwrap_or(""),
            Self::Owned(s) => s,
        }
    }
}

/// One parsed span close, detached from the line.
pub(crate) struct CloseRec {
    pub name: Text,
    pub target: Text,
    pub ts: Option<Timestamp>,
    pub span_id: Option<u64>,
    pub parent_id: Option<u64>,
    pub busy_ns: u64,
    pub idle_ns: u64,
    pub wall_ns: u64,
}

/// What a worker found in one block, in line order.
pub(crate) enum Rec {
    Close(CloseRec),
    Malformed { line: u32, reason: &'static str },
}

/// A parsed block, ready to be applied.
pub(crate) struct ParsedBlock {
    pub seq: u64,
    pub data: Vec<u8>,
    pub lines: u32,
    pub other: u64,
    pub recs: Vec<Rec>,
}

fn text(s: std::borrow::Cow<'_, str>, base: usize) -> Text {
    match s {
        std::borrow::Cow::Borrowed(b) => {
            let start = b.as_ptr() as usize - base;
            Text::Range(start, start + b.len())
        }
        std::borrow::Cow::Owned(o) => Text::Owned(o.into_boxed_str()),
    }
}

fn parse_block(b: Block) -> ParsedBlock {
    let base = b.data.as_ptr() as usize;
    let mut recs = Vec::new();
    let mut other = 0;
    let mut overlong = b.overlong.iter().copied().peekable();
    let mut start = 0;
    for (idx, end) in memchr::memchr_iter(b'\n', &b.data).enumerate() {
        let line = &b.data[start..end];
        start = end + 1;
        #[allow(clippy::cast_possible_truncation)]
        let idx = idx as u32;
        if overlong.peek() == Some(&idx) {
            overlong.next();
            recs.push(Rec::Malformed {
                line: idx,
                reason: "line longer than 1 MiB",
            });
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            Parsed::Close(c) => recs.push(Rec::Close(CloseRec {
                name: text(c.name, base),
                target: text(c.target, base),
                ts: c.ts,
                span_id: c.span_id,
                parent_id: c.parent_id,
                busy_ns: c.busy_ns,
                idle_ns: c.idle_ns,
                wall_ns: c.wall_ns,
            })),
            Parsed::Other => other += 1,
            Parsed::Malformed(reason) => recs.push(Rec::Malformed { line: idx, reason }),
        }
    }
    ParsedBlock {
        seq: b.seq,
        data: b.data,
        lines: b.lines,
        other,
        recs,
    }
}

/// Applies parsed blocks to the analyzer in input order.
struct InOrder<'r> {
    done_rx: &'r mpsc::Receiver<ParsedBlock>,
    pending: BTreeMap<u64, ParsedBlock>,
    next: u64,
}

impl InOrder<'_> {
    /// Waits for the next block in order and applies it; false when the workers are gone.
    fn apply_next(&mut self, an: &mut Analyzer) -> bool {
        while !self.pending.contains_key(&self.next) {
            match self.done_rx.recv() {
                Ok(d) => {
                    self.pending.insert(d.seq, d);
                }
                Err(_) => return false,
            }
        }
        if let Some(d) = self.pending.remove(&self.next) {
            an.apply_block(d);
        }
        self.next += 1;
        true
    }
}

/// Reads `reader` with `workers` parsing threads, applying blocks to `an` in order.
pub(crate) fn feed<R: BufRead + ?Sized>(
    an: &mut Analyzer,
    reader: &mut R,
    workers: usize,
) -> io::Result<()> {
    let (work_tx, work_rx) = mpsc::sync_channel::<Block>(workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<ParsedBlock>();
    let limit = (workers * IN_FLIGHT_PER_WORKER) as u64;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = &work_rx;
            let tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(block) = next else { break };
                    if tx.send(parse_block(block)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut order = InOrder {
            done_rx: &done_rx,
            pending: BTreeMap::new(),
            next: 0,
        };
        let mut sent = 0u64;
        let mut block = Block::new(0);
        let mut dispatch = |block: Block, an: &mut Analyzer, sent: &mut u64| {
            while *sent - order.next >= limit {
                if !order.apply_next(an) {
                    break;
                }
            }
            // A send error means a worker died; its panic surfaces when the scope ends.
            let _ = work_tx.send(block);
            *sent += 1;
        };
        let result = for_each_line(reader, MAX_LINE_BYTES, |line| {
            match line {
                Some(l) => block.data.extend_from_slice(l),
                None => block.overlong.push(block.lines),
            }
            block.data.push(b'\n');
            block.lines += 1;
            if block.data.len() >= BLOCK_BYTES {
                let full = std::mem::replace(&mut block, Block::new(sent + 1));
                dispatch(full, an, &mut sent);
            }
        });
        if block.lines > 0 {
            dispatch(block, an, &mut sent);
        }
        drop(work_tx);
        while order.next < sent {
            if !order.apply_next(an) {
                break;
            }
        }
        result
    })
}
