//! `--compare OLD NEW`: which functions got slower between two logs, judged by the ratios of
//! their median and 95th percentile wall times.

use std::collections::HashMap;

use serde::Serialize;

use crate::report::{FunctionStats, Report};

/// How a function changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// p50 or p95 grew by at least the threshold.
    Slower,
    /// Neither slower nor faster.
    Same,
    /// p50 and p95 both shrank by at least the threshold.
    Faster,
    /// Only in NEW.
    New,
    /// Only in OLD.
    Gone,
}

impl Verdict {
    /// The lowercase name used in tables, JSON and CSV.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slower => "slower",
            Self::Same => "same",
            Self::Faster => "faster",
            Self::New => "new",
            Self::Gone => "gone",
        }
    }
}

/// One function in both (or either) logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// `target::name`.
    pub function: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Calls in OLD.
    pub old_calls: u64,
    /// Calls in NEW.
    pub new_calls: u64,
    /// Median in OLD.
    pub old_p50_ns: u64,
    /// Median in NEW.
    pub new_p50_ns: u64,
    /// `new_p50 / old_p50` when both exist.
    pub p50_ratio: Option<f64>,
    /// 95th percentile in OLD.
    pub old_p95_ns: u64,
    /// 95th percentile in NEW.
    pub new_p95_ns: u64,
    /// `new_p95 / old_p95` when both exist.
    pub p95_ratio: Option<f64>,
    /// Total wall time in OLD.
    pub old_total_ns: u64,
    /// Total wall time in NEW.
    pub new_total_ns: u64,
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The ratio at or above which a function counts as slower (and at or below whose
    /// inverse, faster).
    pub threshold: f64,
    /// How many functions got slower.
    pub slower: usize,
    /// Rows: slower first (largest ratio first), then same, faster, new, gone.
    pub rows: Vec<CompareRow>,
}

#[allow(clippy::cast_precision_loss)]
fn ratio(new: u64, old: u64) -> Option<f64> {
    (old > 0).then(|| new as f64 / old as f64)
}

/// Compares two reports (analyse both without `top` so no function is missing).
#[must_use]
pub fn compare(old: &Report, new: &Report, threshold: f64) -> Comparison {
    let olds: HashMap<&str, &FunctionStats> = old
        .functions
        .iter()
        .map(|f| (f.function.as_str(), f))
        .collect();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in &new.functions {
        seen.insert(n.function.as_str());
        let o = olds.get(n.function.as_str()).copied();
        let (p50, p95) = match o {
            Some(o) => (ratio(n.p50_ns, o.p50_ns), ratio(n.p95_ns, o.p95_ns)),
            None => (None, None),
        };
        let verdict = match o {
            None => Verdict::New,
            Some(_) => {
                let up = |r: Option<f64>| r.is_some_and(|r| r >= threshold);
                let down = |r: Option<f64>| r.is_some_and(|r| r <= 1.0 / threshold);
                if up(p50) || up(p95) {
                    Verdict::Slower
                } else if down(p50) && down(p95) {
                    Verdict::Faster
                } else {
                    Verdict::Same
                }
            }
        };
        rows.push(CompareRow {
            function: n.function.clone(),
            verdict,
            old_calls: o.map_or(0, |o| o.calls),
            new_calls: n.calls,
            old_p50_ns: o.map_or(0, |o| o.p50_ns),
            new_p50_ns: n.p50_ns,
            p50_ratio: p50,
            old_p95_ns: o.map_or(0, |o| o.p95_ns),
            new_p95_ns: n.p95_ns,
            p95_ratio: p95,
            old_total_ns: o.map_or(0, |o| o.total_ns),
            new_total_ns: n.total_ns,
        });
    }
    for o in old
        .functions
        .iter()
        .filter(|o| !seen.contains(o.function.as_str()))
    {
        rows.push(CompareRow {
            function: o.function.clone(),
            verdict: Verdict::Gone,
            old_calls: o.calls,
            new_calls: 0,
            old_p50_ns: o.p50_ns,
            new_p50_ns: 0,
            p50_ratio: None,
            old_p95_ns: o.p95_ns,
            new_p95_ns: 0,
            p95_ratio: None,
            old_total_ns: o.total_ns,
            new_total_ns: 0,
        });
    }
    let worst = |r: &CompareRow| r.p50_ratio.unwrap_or(0.0).max(r.p95_ratio.unwrap_or(0.0));
    rows.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then_with(|| worst(b).total_cmp(&worst(a)))
            .then_with(|| b.new_total_ns.cmp(&a.new_total_ns))
            .then_with(|| a.function.cmp(&b.function))
    });
    Comparison {
        threshold,
        slower: rows.iter().filter(|r| r.verdict == Verdict::Slower).count(),
        rows,
    }
}
