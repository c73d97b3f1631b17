//! Writes the benchmark's reference CSV: `rows` × `cols` with a header
//! `c1..cN`; even 0-based columns are integers, odd ones decimals with two places.
//!
//! `cargo run --release --example gen_csv -- OUT.csv [ROWS] [COLS]`
//! (defaults: 3 000 000 rows × 40 columns, about 830 MB).

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .unwrap_or_else(|| "/tmp/csvsum-ref.csv".to_owned());
    let rows: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_000_000);
    let cols: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let header: Vec<String> = (1..=cols).map(|i| format!("c{i}")).collect();
    writeln!(w, "{}", header.join(","))?;
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    let mut line = Vec::with_capacity(cols * 8);
    for _ in 0..rows {
        line.clear();
        for c in 0..cols {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if c % 2 == 0 {
                push_int(&mut line, state % 1_000_000);
            } else {
                let v = state % 100_000;
                push_int(&mut line, v / 100);
                line.push(b'.');
                line.push(b'0' + (v / 10 % 10) as u8);
                line.push(b'0' + (v % 10) as u8);
            }
            line.push(if c + 1 == cols { b'\n' } else { b',' });
        }
        w.write_all(&line)?;
    }
    w.flush()?;
    eprintln!("wrote {out}: {rows} rows x {cols} columns");
    Ok(())
}

fn push_int(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}
