//! End-to-end tests of `rubra slowlog`: logs written by rubra-telemetry's own layer are parsed
//! back and ranked; malformed lines, gzip, time windows, filters, compare and the output
//! formats.

mod helpers;
mod prop_timestamp;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use helpers::{capture_log, close_line, slowlog, temp_path};
use rubra_slowlog::{Options, Report, SortKey, analyze};

#[tracing::instrument]
fn slow_query(n: u32) {
    std::thread::sleep(Duration::from_millis(40));
}

#[tracing::instrument]
fn fast_helper() {
    std::thread::sleep(Duration::from_millis(1));
}

#[tracing::instrument(skip_all, fields(route = "/images"))]
fn handler() {
    slow_query(1);
    for _ in 0..3 {
        fast_helper();
    }
    std::thread::sleep(Duration::from_millis(15));
}

fn traffic() -> String {
    capture_log(|| {
        for _ in 0..4 {
            handler();
        }
        tracing::info!("done");
    })
}

fn run(log: &str, opts: &Options) -> Report {
    analyze(log.as_bytes(), opts).expect("in memory")
}

fn row<'a>(r: &'a Report, name: &str) -> &'a rubra_slowlog::FunctionStats {
    r.functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no row {name}: {r:#?}"))
}

#[test]
fn own_telemetry_log_is_ranked_with_exact_counts_and_self_time() {
    let log = traffic();
    let report = run(&log, &Options::default());
    let names: Vec<&str> = report.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["handler", "slow_query", "fast_helper"],
        "{report:#?}"
    );
    assert_eq!(report.functions[0].function, "it::handler");
    assert_eq!(
        report.functions.iter().map(|f| f.calls).collect::<Vec<_>>(),
        [4, 4, 12]
    );
    assert_eq!(report.spans, 20);
    assert_eq!(report.malformed, 0);
    assert_eq!(report.other_lines, 1, "the info! event");

    let h = row(&report, "handler");
    let q = row(&report, "slow_query");
    let f = row(&report, "fast_helper");
    assert!(q.p50_ns >= 30_000_000 && q.min_ns >= 30_000_000, "{q:#?}");
    assert_eq!(q.self_ns, q.total_ns, "a leaf's self time is its wall time");
    // The handler's own time is its 15 ms sleep per call, children subtracted.
    assert!(h.self_ns >= 60_000_000, "{h:#?}");
    assert!(
        h.self_ns + q.total_ns + f.total_ns <= h.total_ns + 1,
        "{h:#?}"
    );
    assert!(h.self_ns < h.total_ns - q.total_ns, "{h:#?}");
    assert!(
        q.busy_ratio > 0.9,
        "sleeping inside the span is busy time: {q:#?}"
    );

    let by_self = run(
        &log,
        &Options {
            sort: SortKey::SelfTime,
            ..Options::default()
        },
    );
    assert_eq!(by_self.functions[0].name, "slow_query");
    let by_calls = run(
        &log,
        &Options {
            sort: SortKey::Calls,
            top: Some(1),
            ..Options::default()
        },
    );
    assert_eq!(by_calls.functions.len(), 1);
    assert_eq!(by_calls.total_functions, 3);
    assert_eq!(by_calls.functions[0].name, "fast_helper");
}

#[test]
fn malformed_lines_are_counted_not_fatal() {
    let mut log = traffic();
    log.push_str("garbage\n{\"kind\":\"span_close\",\"name\":\"cut\n\n[1]\n");
    log.insert_str(0, "{not json}\n");
    let report = run(&log, &Options::default());
    assert_eq!(report.malformed, 4, "{:#?}", report.malformed_examples);
    assert_eq!(report.malformed_examples[0].line, 1);
    assert_eq!(report.spans, 20);
    assert_eq!(row(&report, "fast_helper").calls, 12);
}

#[test]
fn gzip_files_and_stdin_like_readers_are_read() {
    let log = traffic();
    let path = temp_path("log.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).expect("create"),
        flate2::Compression::fast(),
    );
    gz.write_all(log.as_bytes()).expect("write");
    gz.finish().expect("finish");
    let plain = temp_path("log.json");
    std::fs::write(&plain, &log).expect("write");

    let (code, out) = slowlog(&[
        "--json",
        path.to_str().expect("utf-8"),
        plain.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, ExitCode::SUCCESS);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["spans"], 40);
    assert_eq!(v["functions"][0]["name"], "handler");
    assert_eq!(v["functions"][0]["calls"], 8);
    assert_eq!(v["sources"].as_array().map(Vec::len), Some(2));

    let in_memory = analyze(
        std::fs::File::open(&path).expect("open"),
        &Options::default(),
    )
    .expect("gzip reader");
    assert_eq!(in_memory.spans, 20);
}

#[test]
fn csv_and_table_outputs() {
    let path = temp_path("log.json");
    std::fs::write(&path, traffic()).expect("write");
    let p = path.to_str().expect("utf-8");
    let (_, csv) = slowlog(&["--csv", "--sort", "calls", p]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("function,target,name,calls,total_ns"));
    assert!(
        lines[1].starts_with("it::fast_helper,it,fast_helper,12,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 4);

    let (_, table) = slowlog(&["--top", "2", p]);
    let first: Vec<&str> = table.lines().collect();
    assert!(
        first[0].starts_with("FUNCTION") && first[0].contains("P99"),
        "{table}"
    );
    assert!(first[1].starts_with("it::handler "), "{table}");
    assert!(table.contains("(top 2 of 3)"), "{table}");
    assert!(first[1].contains("ms"), "humanised durations: {table}");
}

#[test]
fn time_window_and_filter() {
    let mut log = String::new();
    log += &close_line("early", 1, None, 1_000, "2026-01-01T00:00:00Z");
    log += &close_line("mid", 1, None, 2_000, "2026-01-01T12:00:00Z");
    log += &close_line("late", 1, None, 3_000, "2026-01-02T00:00:00.5Z");
    log += &close_line(
        "midnight_snack",
        1,
        None,
        3_000,
        "2026-01-02T01:00:00+02:00",
    );
    let opts = Options {
        since: Some("2026-01-01T06:00:00Z".parse().expect("ts")),
        until: Some("2026-01-02".parse().expect("ts")),
        ..Options::default()
    };
    let r = run(&log, &opts);
    let names: Vec<&str> = r.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["midnight_snack", "mid"]);
    assert_eq!(r.out_of_range, 2);
    assert_eq!(r.first_ts.as_deref(), Some("2026-01-01T12:00:00Z"));

    let opts = Options {
        filter: Some(rubra_slowlog::Filter::new("^t::m").expect("regex")),
        ..Options::default()
    };
    let r = run(&log, &opts);
    assert_eq!(r.functions.len(), 2);
    assert_eq!(r.filtered_out, 2);
}

#[test]
fn reused_span_ids_do_not_leak_child_time() {
    // Span 2 is a child of 1 and closes; id 2 is then reused for a root span with no children.
    let ts = "2026-01-01T00:00:00Z";
    let mut log = String::new();
    log += &close_line("child", 2, Some(1), 400, ts);
    log += &close_line("parent", 1, None, 1_000, ts);
    log += &close_line("child", 3, Some(2), 100, ts);
    log += &close_line("reused", 2, None, 500, ts);
    log += &close_line("lonely", 2, None, 700, ts);
    let r = run(&log, &Options::default());
    assert_eq!(row(&r, "parent").self_ns, 600);
    assert_eq!(row(&r, "reused").self_ns, 400);
    assert_eq!(
        row(&r, "lonely").self_ns,
        700,
        "id 2's child time was consumed at close"
    );
}

#[test]
fn compare_shows_what_got_slower() {
    let ts = "2026-01-01T00:00:00Z";
    let mut old = String::new();
    let mut new = String::new();
    for i in 0..50 {
        old += &close_line("steady", i, None, 1_000_000, ts);
        new += &close_line("steady", i, None, 1_050_000, ts);
        old += &close_line("regressed", i, None, 2_000_000, ts);
        new += &close_line("regressed", i, None, 6_000_000, ts);
        old += &close_line("improved", i, None, 9_000_000, ts);
        new += &close_line("improved", i, None, 3_000_000, ts);
    }
    old += &close_line("removed", 1, None, 5, ts);
    new += &close_line("added", 1, None, 5, ts);
    let (a, b) = (temp_path("old.json"), temp_path("new.json"));
    std::fs::write(&a, old).expect("write");
    std::fs::write(&b, new).expect("write");
    let (a, b) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));

    let (code, out) = slowlog(&["--compare", a, b, "--json"]);
    assert_eq!(code, ExitCode::SUCCESS);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["slower"], 1, "{out}");
    let rows = v["rows"].as_array().expect("rows");
    let verdicts: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap_or(""),
                r["verdict"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("t::regressed", "slower"),
            ("t::steady", "same"),
            ("t::improved", "faster"),
            ("t::added", "new"),
            ("t::removed", "gone"),
        ]
    );
    let ratio = rows[0]["p50_ratio"].as_f64().expect("ratio");
    assert!((ratio - 3.0).abs() < 0.03, "{ratio}");

    let (_, table) = slowlog(&["--compare", a, b]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("t::regressed") && l.contains("slower")),
        "{table}"
    );
    assert!(table.contains("1 of 5 functions slower"), "{table}");
}

#[test]
fn tracing_fmt_close_events_are_accepted() {
    use tracing_subscriber::fmt::format::FmtSpan;
    let cap = rubra_telemetry::LogCapture::new();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(cap.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            slow_query(7);
        }
        fast_helper();
    });
    let r = run(&cap.contents(), &Options::default());
    assert_eq!(r.malformed, 0, "{:#?}", r.malformed_examples);
    assert_eq!(row(&r, "slow_query").calls, 3, "{r:#?}");
    assert_eq!(row(&r, "fast_helper").calls, 1);
    assert!(row(&r, "slow_query").p50_ns >= 30_000_000);
    assert_eq!(r.functions[0].function, "it::slow_query");
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let cli_err = rubra_slowlog::analyze_paths(&[temp_path("missing.json")], &Options::default())
        .expect_err("missing file");
    assert!(cli_err.to_string().contains("missing.json"), "{cli_err}");
}

#[tracing::instrument]
fn deliberately_slow(i: u32) {
    std::thread::sleep(Duration::from_millis(25));
}

#[tracing::instrument]
fn quick_route(i: u32) {
    std::thread::sleep(Duration::from_micros(200));
}

/// The shape of the server-level test: global telemetry, traffic on several threads, a tap,
/// then the report ranks the slow function first with its exact call count.
#[test]
fn global_telemetry_tap_ranks_the_slow_function_first() {
    rubra_telemetry::init_for_tests().expect("telemetry");
    let tap = rubra_telemetry::tap_logs();
    let workers: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..5 {
                    deliberately_slow(t * 10 + i);
                    quick_route(i);
                    quick_route(i + 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let report = run(
        &tap.contents(),
        &Options {
            filter: Some(rubra_slowlog::Filter::new("^it::").expect("regex")),
            ..Options::default()
        },
    );
    assert_eq!(
        report.functions[0].function, "it::deliberately_slow",
        "{report:#?}"
    );
    assert_eq!(report.functions[0].calls, 15);
    assert_eq!(row(&report, "quick_route").calls, 30);
    assert_eq!(report.malformed, 0);
}

/// Several 1 MiB blocks, parents and children straddling block edges, malformed and
/// overlong lines: the parallel parse must give exactly the sequential result.
#[test]
fn parallel_parse_equals_sequential() {
    let ts = "2026-01-01T00:00:00Z";
    let mut log = String::new();
    for i in 0..12_000u64 {
        log += &close_line("leaf", 2, Some(1), 100 + i % 7, ts);
        log += &close_line("leaf", 3, Some(1), 200 + i % 11, ts);
        log += &close_line("root", 1, None, 1_000 + i % 13, ts);
        if i == 5_000 {
            log += "not json at all\n";
            log += &"x".repeat(rubra_slowlog::MAX_LINE_BYTES + 10);
            log += "\n";
        }
    }
    let sequential = run(
        &log,
        &Options {
            threads: 1,
            ..Options::default()
        },
    );
    for threads in [2, 3] {
        let parallel = run(
            &log,
            &Options {
                threads,
                ..Options::default()
            },
        );
        assert_eq!(parallel, sequential, "threads {threads}");
    }
    assert_eq!(sequential.malformed, 2);
    assert_eq!(sequential.malformed_examples[0].line, 15_004);
    assert_eq!(sequential.malformed_examples[1].line, 15_005);
    assert_eq!(row(&sequential, "root").calls, 12_000);
    let root = row(&sequential, "root");
    let leaf = row(&sequential, "leaf");
    assert_eq!(root.self_ns, root.total_ns - leaf.total_ns);
}

/// A log line whose `ts` is on the last day that nanoseconds since 1970 fit in an
/// `i64` (2262-04-11) but later in the day overflowed the addition of the time of
/// day: a panic (overflow checks are on in release) instead of a line without time.
/// Times on the first day of the range (1677-09-21) were refused.
#[test]
fn a_timestamp_past_the_i64_nanosecond_range_is_refused_not_a_panic() {
    let log = include_bytes!("../fixtures/ts_past_the_i64_nanosecond_range.log");
    let report = analyze(
        &log[..],
        &Options {
            threads: 1,
            ..Options::default()
        },
    )
    .expect("analyze");
    assert_eq!(report.spans, 2);
    assert_eq!(report.last_ts.as_deref(), Some("2026-01-02T03:04:05Z"));
    for late in [
        "2262-04-11T23:59:59Z",
        "2262-04-11T23:47:16.854775808Z",
        "2262-04-12",
    ] {
        assert!(late.parse::<rubra_slowlog::Timestamp>().is_err(), "{late}");
    }
    let last = "2262-04-11T23:47:16.854775807Z".parse::<rubra_slowlog::Timestamp>();
    assert_eq!(last.map(|t| t.0), Ok(i64::MAX));
    // The first day of the range was refused whole (found by tests/it/prop_timestamp.rs).
    let first = "1677-09-21T00:12:43.145224192Z".parse::<rubra_slowlog::Timestamp>();
    assert_eq!(first.map(|t| t.0), Ok(i64::MIN));
    assert!(
        "1677-09-21T00:12:43.145224191Z"
            .parse::<rubra_slowlog::Timestamp>()
            .is_err()
    );
}
