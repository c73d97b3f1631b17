//! Cost of one instrumented call under rubra's telemetry: `span_overhead [N]` times N nested
//! span pairs with the JSON layer writing to a sink, with and without the metrics recorder.

use std::time::Instant;

use rubra_telemetry::SpanLayer;
use rubra_telemetry::tracing_subscriber::layer::SubscriberExt as _;

#[tracing::instrument(skip_all, fields(id = i))]
fn outer(i: u64) -> u64 {
    inner(i) + 1
}

#[tracing::instrument(skip_all)]
fn inner(i: u64) -> u64 {
    std::hint::black_box(i)
}

fn run(label: &str, n: u64, metrics: bool) {
    let subscriber = rubra_telemetry::tracing_subscriber::registry()
        .with(SpanLayer::json(std::io::sink, Some(1000)).with_metrics(metrics));
    tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        let mut acc = 0;
        for i in 0..n {
            acc += outer(i);
        }
        let per_span = start.elapsed().as_nanos() / u128::from(2 * n);
        println!(
            "{label}: {per_span} ns per span (open+enter+exit+close+JSON line), checksum {acc}"
        );
    });
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    run("json, no recorder", n, true);
    let telemetry = rubra_telemetry::install_metrics().expect("recorder");
    run("json + prometheus histogram", n, true);
    let text = telemetry.render_metrics();
    let lines = text
        .lines()
        .filter(|l| l.contains("rubra_span_duration"))
        .count();
    println!("/metrics has {lines} rubra_span_duration lines");
}
