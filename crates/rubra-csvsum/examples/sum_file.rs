//! Sums every N-th column of a CSV file on all cores and prints the result.
//!
//! `sum_file PATH [--step N] [--delimiter C] [--no-header] [--skip-invalid]
//! [--threads N] [--stream] [--pread]` (`--stream` reads the file as a plain
//! stream through `sum_reader`; `--pread` reads with positioned reads instead of mapping the file).

use std::process::ExitCode;
use std::time::Instant;

use rubra_csvsum::{Control, SumOptions};

fn main() -> ExitCode {
    let mut path = None;
    let mut options = SumOptions::default();
    let mut control = Control::default();
    let mut stream = false;
    let mut pread = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--step" => options.step = value().parse().unwrap_or(0),
            "--delimiter" => options.delimiter = value().bytes().next().unwrap_or(b','),
            "--no-header" => options.header = false,
            "--skip-invalid" => options.skip_invalid = true,
            "--threads" => control.threads = value().parse().unwrap_or(0),
            "--stream" => stream = true,
            "--pread" => pread = true,
            _ => path = Some(a),
        }
    }
    let Some(path) = path else {
        eprintln!(
            "usage: sum_file PATH [--step N] [--delimiter C] [--no-header] [--skip-invalid] [--threads N] [--stream]"
        );
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let result = if stream {
        std::fs::File::open(&path)
            .map_err(Into::into)
            .and_then(|f| rubra_csvsum::sum_reader(f, &options, &control))
    } else if pread {
        std::fs::File::open(&path)
            .map_err(Into::into)
            .and_then(|f| rubra_csvsum::sum_read_at(&f, &options, &control))
    } else {
        rubra_csvsum::sum_file(&path, &options, &control)
    };
    let elapsed = started.elapsed();
    match result {
        Ok(s) => {
            println!("rows\t{}", s.rows);
            for c in &s.columns {
                println!("{}\t{}\t{}\t{}", c.index, c.name, c.sum, c.skipped);
            }
            eprintln!("elapsed {:.3} s", elapsed.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
