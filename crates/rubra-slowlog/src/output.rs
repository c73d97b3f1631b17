//! Rendering reports and comparisons as an aligned terminal table, JSON or CSV.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::compare::Comparison;
use crate::report::Report;
use crate::timefmt::human_duration;

/// Function names longer than this are shortened from the left in tables.
const MAX_NAME: usize = 60;

fn shorten(s: &str) -> String {
    let n = s.chars().count();
    if n <= MAX_NAME {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(n - (MAX_NAME - 1)).collect();
        format!("…{tail}")
    }
}

fn pct(r: f64) -> String {
    format!("{:.0}%", r * 100.0)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("×{r:.2}"))
}

/// Writes rows as columns: the first column left-aligned, the others right-aligned.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    let mut emit = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        line.clear();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    emit(&mut header.iter().copied())?;
    for row in rows {
        emit(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Writes the report as an aligned table with humanised durations and a summary footer.
pub fn write_table(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let header = [
        "FUNCTION", "CALLS", "TOTAL", "MEAN", "P50", "P95", "P99", "MAX", "BUSY", "SELF", "SELF%",
    ];
    let rows: Vec<Vec<String>> = report
        .functions
        .iter()
        .map(|f| {
            vec![
                shorten(&f.function),
                f.calls.to_string(),
                human_duration(f.total_ns),
                human_duration(f.mean_ns),
                human_duration(f.p50_ns),
                human_duration(f.p95_ns),
                human_duration(f.p99_ns),
                human_duration(f.max_ns),
                pct(f.busy_ratio),
                human_duration(f.self_ns),
                pct(f.self_ratio),
            ]
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "no span close events found")?;
    } else {
        table(out, &header, &rows)?;
    }
    writeln!(out)?;
    let shown = if report.functions.len() < report.total_functions {
        format!(
            " (top {} of {})",
            report.functions.len(),
            report.total_functions
        )
    } else {
        String::new()
    };
    write!(
        out,
        "{} functions{shown}, {} spans from {} lines; {} other lines, {} malformed",
        report.total_functions, report.spans, report.lines, report.other_lines, report.malformed
    )?;
    if report.out_of_range > 0 {
        write!(out, ", {} outside --since/--until", report.out_of_range)?;
    }
    if report.filtered_out > 0 {
        write!(out, ", {} filtered out", report.filtered_out)?;
    }
    writeln!(out)?;
    if let (Some(a), Some(b)) = (&report.first_ts, &report.last_ts) {
        writeln!(out, "spans closed from {a} to {b}")?;
    }
    writeln!(
        out,
        "BUSY = busy/wall (time entered vs. open); SELF = wall minus direct children's wall; P50-P99 within ±0.4%"
    )?;
    Ok(())
}

/// Writes the report as one JSON object (`functions` plus the counters).
pub fn write_json(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes one CSV row per function, durations as integer nanoseconds.
pub fn write_csv(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "function,target,name,calls,total_ns,mean_ns,p50_ns,p95_ns,p99_ns,min_ns,max_ns,busy_ns,idle_ns,self_ns,busy_ratio,self_ratio"
    )?;
    for f in &report.functions {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4}",
            csv_field(&f.function),
            csv_field(&f.target),
            csv_field(&f.name),
            f.calls,
            f.total_ns,
            f.mean_ns,
            f.p50_ns,
            f.p95_ns,
            f.p99_ns,
            f.min_ns,
            f.max_ns,
            f.busy_ns,
            f.idle_ns,
            f.self_ns,
            f.busy_ratio,
            f.self_ratio
        )?;
    }
    Ok(())
}

/// Writes a comparison as an aligned table.
pub fn write_compare_table(
    out: &mut dyn Write,
    cmp: &Comparison,
    top: Option<usize>,
) -> io::Result<()> {
    let header = [
        "FUNCTION",
        "VERDICT",
        "CALLS OLD",
        "CALLS NEW",
        "P50 OLD",
        "P50 NEW",
        "P50",
        "P95 OLD",
        "P95 NEW",
        "P95",
    ];
    let rows: Vec<Vec<String>> = cmp
        .rows
        .iter()
        .take(top.unwrap_or(usize::MAX))
        .map(|r| {
            let d = |ns: u64, calls: u64| {
                if calls == 0 {
                    "-".to_owned()
                } else {
                    human_duration(ns)
                }
            };
            vec![
                shorten(&r.function),
                r.verdict.as_str().to_owned(),
                r.old_calls.to_string(),
                r.new_calls.to_string(),
                d(r.old_p50_ns, r.old_calls),
                d(r.new_p50_ns, r.new_calls),
                ratio(r.p50_ratio),
                d(r.old_p95_ns, r.old_calls),
                d(r.new_p95_ns, r.new_calls),
                ratio(r.p95_ratio),
            ]
        })
        .collect();
    table(out, &header, &rows)?;
    writeln!(out)?;
    writeln!(
        out,
        "{} of {} functions slower (p50 or p95 ratio ≥ {:.2})",
        cmp.slower,
        cmp.rows.len(),
        cmp.threshold
    )
}

/// Writes a comparison as JSON.
pub fn write_compare_json(out: &mut dyn Write, cmp: &Comparison) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, cmp)?;
    writeln!(out)
}

/// Writes a comparison as CSV.
pub fn write_compare_csv(out: &mut dyn Write, cmp: &Comparison) -> io::Result<()> {
    writeln!(
        out,
        "function,verdict,old_calls,new_calls,old_p50_ns,new_p50_ns,p50_ratio,old_p95_ns,new_p95_ns,p95_ratio,old_total_ns,new_total_ns"
    )?;
    let r4 = |r: Option<f64>| r.map(|r| format!("{r:.4}")).unwrap_or_default();
    for r in &cmp.rows {
        let verdict = r.verdict.as_str();
        writeln!(
            out,
            "{},{verdict},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.function),
            r.old_calls,
            r.new_calls,
            r.old_p50_ns,
            r.new_p50_ns,
            r4(r.p50_ratio),
            r.old_p95_ns,
            r.new_p95_ns,
            r4(r.p95_ratio),
            r.old_total_ns,
            r.new_total_ns
        )?;
    }
    Ok(())
}
