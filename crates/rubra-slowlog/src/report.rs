//! Streaming aggregation of span closes into one row per function: counts, totals, exact
//! max, histogram percentiles, busy/idle and self time (wall time minus the wall time of
//! direct children, linked through `span_id`/`parent_id`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::str::FromStr;

use serde::Serialize;

use crate::hist::LogHistogram;
use crate::input::{MAX_LINE_BYTES, for_each_line};
use crate::parallel::{ParsedBlock, Rec};
use crate::parse::{Parsed, SpanClose, parse_line};
use crate::timefmt::Timestamp;

/// Spans still open (parents waiting for their own close) kept for self time; past this the
/// links of further parents are dropped (counted in [`Report::unlinked`]).
const MAX_OPEN_SPANS: usize = 1 << 20;
/// How many malformed lines are kept as examples.
const MAX_EXAMPLES: usize = 5;

/// The column rows are ranked by (largest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Total wall time.
    #[default]
    Total,
    /// 99th percentile wall time.
    P99,
    /// 95th percentile wall time.
    P95,
    /// Median wall time.
    P50,
    /// Number of calls.
    Calls,
    /// Total self time (wall time minus direct children's wall time).
    #[cfg_attr(feature = "cli", value(name = "self"))]
    #[serde(rename = "self")]
    SelfTime,
    /// Mean wall time.
    Mean,
    /// Longest single call.
    Max,
}

impl FromStr for SortKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "total" => Self::Total,
            "p99" => Self::P99,
            "p95" => Self::P95,
            "p50" | "median" => Self::P50,
            "calls" | "count" => Self::Calls,
            "self" => Self::SelfTime,
            "mean" | "avg" => Self::Mean,
            "max" => Self::Max,
            _ => return Err(format!("unknown sort key {s:?}")),
        })
    }
}

/// A function-name filter: a `regex-lite` pattern matched anywhere in `target::name` (so a
/// plain word is a substring match).
#[derive(Debug, Clone)]
pub struct Filter(regex_lite::Regex);

/// The error of building a [`Filter`].
#[derive(Debug, thiserror::Error)]
#[error("invalid --filter pattern: {0}")]
pub struct FilterError(#[from] regex_lite::Error);

impl Filter {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, FilterError> {
        Ok(Self(regex_lite::Regex::new(pattern)?))
    }

    /// Whether `function` is kept.
    #[must_use]
    pub fn matches(&self, function: &str) -> bool {
        self.0.is_match(function)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// What to count and how to rank it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Ranking column.
    pub sort: SortKey,
    /// Keep only the first N rows.
    pub top: Option<usize>,
    /// Count only spans that closed at or after this time.
    pub since: Option<Timestamp>,
    /// Count only spans that closed at or before this time.
    pub until: Option<Timestamp>,
    /// Count only functions matching this filter.
    pub filter: Option<Filter>,
    /// Parsing threads: 1 parses on the calling thread; 0 picks one per CPU less one (at
    /// most 4) on machines with 4 CPUs or more, else 1. The result is the same either way.
    pub threads: usize,
}

/// One row of the report: every closed span of one function (`target::name`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionStats {
    /// `target::name` (just `name` when the target is empty): the row's key.
    pub function: String,
    /// The span name (for `#[instrument]`, the function name).
    pub name: String,
    /// The span target (for `#[instrument]`, the module path).
    pub target: String,
    /// Number of closed spans.
    pub calls: u64,
    /// Sum of wall times.
    pub total_ns: u64,
    /// Mean wall time (exact).
    pub mean_ns: u64,
    /// Median wall time (histogram, ±0.4 %).
    pub p50_ns: u64,
    /// 95th percentile wall time (histogram, ±0.4 %).
    pub p95_ns: u64,
    /// 99th percentile wall time (histogram, ±0.4 %).
    pub p99_ns: u64,
    /// Shortest call (exact).
    pub min_ns: u64,
    /// Longest call (exact).
    pub max_ns: u64,
    /// Sum of busy time (span entered, i.e. being polled or running).
    pub busy_ns: u64,
    /// Sum of idle time (span open but not entered, e.g. awaiting I/O).
    pub idle_ns: u64,
    /// Sum of self time: wall time minus the wall time of direct child spans (never below 0
    /// per call). Equals wall time for input without span ids.
    pub self_ns: u64,
    /// `busy_ns / total_ns`.
    pub busy_ratio: f64,
    /// `self_ns / total_ns`.
    pub self_ratio: f64,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MalformedLine {
    /// The input it came from.
    pub source: String,
    /// 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// The result of an analysis: ranked rows plus what was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Inputs read, in order.
    pub sources: Vec<String>,
    /// Lines read (including blank, skipped and malformed ones).
    pub lines: u64,
    /// Span closes counted in the rows.
    pub spans: u64,
    /// Valid lines that are not span closes (events, slow-span warnings, other JSON).
    pub other_lines: u64,
    /// Lines that could not be used (not JSON, truncated, missing fields, too long).
    pub malformed: u64,
    /// The first few malformed lines.
    pub malformed_examples: Vec<MalformedLine>,
    /// Span closes left out by `--since`/`--until` (including those without a readable
    /// timestamp while a time bound is set).
    pub out_of_range: u64,
    /// Span closes left out by `--filter`.
    pub filtered_out: u64,
    /// Parent links dropped because too many spans were open at once (self time of those
    /// parents is then overstated).
    pub unlinked: u64,
    /// Read errors (e.g. a truncated gzip file): what was read before them is counted.
    pub errors: Vec<String>,
    /// Earliest timestamp among counted spans.
    pub first_ts: Option<String>,
    /// Latest timestamp among counted spans.
    pub last_ts: Option<String>,
    /// Number of functions before `--top` was applied.
    pub total_functions: usize,
    /// The rows, ranked.
    pub functions: Vec<FunctionStats>,
}

#[derive(Debug)]
struct FunctionAcc {
    function: String,
    name: String,
    target: String,
    included: bool,
    calls: u64,
    total: u64,
    busy: u64,
    idle: u64,
    self_ns: u64,
    max: u64,
    min: u64,
    hist: LogHistogram,
}

/// A streaming analyzer: feed it inputs one after another, then [`Analyzer::finish`].
/// Memory is bounded by the number of distinct functions and of concurrently open spans,
/// not by the input size.
#[derive(Debug)]
pub struct Analyzer {
    opts: Options,
    funcs: Vec<FunctionAcc>,
    index: HashMap<Box<str>, usize>,
    key: String,
    open: HashMap<u64, u64>,
    source: String,
    line_no: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    report: Report,
}

impl Analyzer {
    /// A fresh analyzer with these options.
    #[must_use]
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            funcs: Vec::new(),
            index: HashMap::new(),
            key: String::new(),
            open: HashMap::new(),
            source: String::new(),
            line_no: 0,
            first: None,
            last: None,
            report: Report {
                sources: Vec::new(),
                lines: 0,
                spans: 0,
                other_lines: 0,
                malformed: 0,
                malformed_examples: Vec::new(),
                out_of_range: 0,
                filtered_out: 0,
                unlinked: 0,
                errors: Vec::new(),
                first_ts: None,
                last_ts: None,
                total_functions: 0,
                functions: Vec::new(),
            },
        }
    }

    /// Starts a new input (another process's log: span ids are not shared across inputs).
    pub fn begin_source(&mut self, name: &str) {
        self.source = name.to_owned();
        self.report.sources.push(name.to_owned());
        self.line_no = 0;
        self.open.clear();
    }

    /// Reads a whole (already decompressed) input. A read error stops this input and is
    /// returned; what was read before it stays counted.
    pub fn feed<R: BufRead + ?Sized>(&mut self, source: &str, reader: &mut R) -> io::Result<()> {
        self.begin_source(source);
        let threads = match self.opts.threads {
            // On 2-3 CPUs (often shared) worker threads measured slower than one thread.
            0 => match std::thread::available_parallelism().map_or(1, usize::from) {
                n if n >= 4 => (n - 1).min(4),
                _ => 1,
            },
            n => n,
        };
        let result = if threads > 1 {
            crate::parallel::feed(self, reader, threads)
        } else {
            self.feed_sequential(reader)
        };
        if let Err(e) = &result {
            self.report.errors.push(format!(
                "{source}: read error after line {}: {e}",
                self.line_no
            ));
        }
        result
    }

    fn feed_sequential<R: BufRead + ?Sized>(&mut self, reader: &mut R) -> io::Result<()> {
        for_each_line(reader, MAX_LINE_BYTES, |line| match line {
            Some(l) => self.feed_line(l),
            None => {
                self.line_no += 1;
                self.report.lines += 1;
                self.malformed("line longer than 1 MiB");
            }
        })
    }

    /// Applies a block parsed on a worker thread (see `parallel`).
    pub(crate) fn apply_block(&mut self, block: ParsedBlock) {
        let base = self.line_no;
        for rec in &block.recs {
            match rec {
                Rec::Close(c) => {
                    let close = SpanClose {
                        name: Cow::Borrowed(c.name.get(&block.data)),
                        target: Cow::Borrowed(c.target.get(&block.data)),
                        ts: c.ts,
                        span_id: c.span_id,
                        parent_id: c.parent_id,
                        busy_ns: c.busy_ns,
                        idle_ns: c.idle_ns,
                        wall_ns: c.wall_ns,
                    };
                    self.close(&close);
                }
                Rec::Malformed { line, reason } => {
                    self.line_no = base + u64::from(*line) + 1;
                    self.malformed(reason);
                }
            }
        }
        self.line_no = base + u64::from(block.lines);
        self.report.lines += u64::from(block.lines);
        self.report.other_lines += block.other;
    }

    /// Counts one line (without its newline) of the current input.
    pub fn feed_line(&mut self, line: &[u8]) {
        self.line_no += 1;
        self.report.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match parse_line(line) {
            Parsed::Close(c) => self.close(&c),
            Parsed::Other => self.report.other_lines += 1,
            Parsed::Malformed(reason) => self.malformed(reason),
        }
    }

    fn malformed(&mut self, reason: &str) {
        self.report.malformed += 1;
        if self.report.malformed_examples.len() < MAX_EXAMPLES {
            self.report.malformed_examples.push(MalformedLine {
                source: self.source.clone(),
                line: self.line_no,
                reason: reason.to_owned(),
            });
        }
    }

    fn close(&mut self, c: &SpanClose<'_>) {
        // Link first, whatever the filters say, so parents get their children's time.
        let children = c.span_id.and_then(|id| self.open.remove(&id)).unwrap_or(0);
        if let Some(parent) = c.parent_id {
            if let Some(sum) = self.open.get_mut(&parent) {
                *sum = sum.saturating_add(c.wall_ns);
            } else if self.open.len() < MAX_OPEN_SPANS {
                self.open.insert(parent, c.wall_ns);
            } else {
                self.report.unlinked += 1;
            }
        }
        let ts = c.ts;
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let in_range = ts.is_some_and(|t| {
                self.opts.since.is_none_or(|s| t >= s) && self.opts.until.is_none_or(|u| t <= u)
            });
            if !in_range {
                self.report.out_of_range += 1;
                return;
            }
        }
        let idx = self.function_index(&c.target, &c.name);
        let f = &mut self.funcs[idx];
        if !f.included {
            self.report.filtered_out += 1;
            return;
        }
        let wall = c.wall_ns;
        if f.calls == 0 {
            f.min = wall;
        }
        f.calls += 1;
        f.total = f.total.saturating_add(wall);
        f.busy = f.busy.saturating_add(c.busy_ns.min(wall));
        f.idle = f.idle.saturating_add(c.idle_ns);
        f.self_ns = f.self_ns.saturating_add(wall.saturating_sub(children));
        f.max = f.max.max(wall);
        f.min = f.min.min(wall);
        f.hist.record(wall);
        self.report.spans += 1;
        if let Some(t) = ts {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }

    fn function_index(&mut self, target: &str, name: &str) -> usize {
        self.key.clear();
        if !target.is_empty() {
            self.key.push_str(target);
            self.key.push_str("::");
        }
        self.key.push_str(name);
        if let Some(&i) = self.index.get(self.key.as_str()) {
            return i;
        }
        let included = self
            .opts
            .filter
            .as_ref()
            .is_none_or(|f| f.matches(&self.key));
        let i = self.funcs.len();
        self.funcs.push(FunctionAcc {
            function: self.key.clone(),
            name: name.to_owned(),
            target: target.to_owned(),
            included,
            calls: 0,
            total: 0,
            busy: 0,
            idle: 0,
            self_ns: 0,
            max: 0,
            min: 0,
            hist: LogHistogram::new(),
        });
        self.index.insert(self.key.clone().into_boxed_str(), i);
        i
    }

    /// Ranks the rows and returns the report.
    #[must_use]
    pub fn finish(self) -> Report {
        let mut report = self.report;
        let mut rows: Vec<FunctionStats> = self
            .funcs
            .into_iter()
            .filter(|f| f.included && f.calls > 0)
            .map(|f| {
                #[allow(clippy::cast_precision_loss)]
                let ratio = |part: u64| {
                    if f.total == 0 {
                        0.0
                    } else {
                        part as f64 / f.total as f64
                    }
                };
                FunctionStats {
                    mean_ns: f.total / f.calls,
                    p50_ns: f.hist.quantile(0.50),
                    p95_ns: f.hist.quantile(0.95),
                    p99_ns: f.hist.quantile(0.99),
                    busy_ratio: ratio(f.busy),
                    self_ratio: ratio(f.self_ns),
                    function: f.function,
                    name: f.name,
                    target: f.target,
                    calls: f.calls,
                    total_ns: f.total,
                    min_ns: f.min,
                    max_ns: f.max,
                    busy_ns: f.busy,
                    idle_ns: f.idle,
                    self_ns: f.self_ns,
                }
            })
            .collect();
        let key = |r: &FunctionStats| match self.opts.sort {
            SortKey::Total => r.total_ns,
            SortKey::P99 => r.p99_ns,
            SortKey::P95 => r.p95_ns,
            SortKey::P50 => r.p50_ns,
            SortKey::Calls => r.calls,
            SortKey::SelfTime => r.self_ns,
            SortKey::Mean => r.mean_ns,
            SortKey::Max => r.max_ns,
        };
        rows.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| b.total_ns.cmp(&a.total_ns))
                .then_with(|| a.function.cmp(&b.function))
        });
        report.total_functions = rows.len();
        if let Some(n) = self.opts.top {
            rows.truncate(n);
        }
        report.functions = rows;
        report.first_ts = self.first.map(|t| t.to_string());
        report.last_ts = self.last.map(|t| t.to_string());
        report
    }
}
