//! Opening inputs (files, `-` for stdin, gzip detected by its magic bytes) and reading them
//! line by line in bounded memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// Lines longer than this are counted as malformed and skipped without being buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;

const BUF_BYTES: usize = 256 * 1024;

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic bytes (concatenated
/// members, as logrotate and `cat a.gz b.gz` make, are read through).
pub fn decompressing<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn BufRead + 'a>> {
    let mut buffered = BufReader::with_capacity(BUF_BYTES, reader);
    let head = loop {
        match buffered.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            BUF_BYTES,
            MultiGzDecoder::new(buffered),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Opens a path (`-` is stdin), decompressing gzip.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        decompressing(io::stdin())
    } else {
        decompressing(File::open(path)?)
    }
}

/// Calls `f` with every line (without `\n` or `\r\n`), or with `None` for a line longer than
/// `max` bytes. A final line without a newline is delivered too.
pub(crate) fn for_each_line<R: BufRead + ?Sized>(
    r: &mut R,
    max: usize,
    mut f: impl FnMut(Option<&[u8]>),
) -> io::Result<()> {
    fn trim_cr(l: &[u8]) -> &[u8] {
        l.strip_suffix(b"\r").unwrap_or(l)
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            if overlong {
                f(None);
            } else if !buf.is_empty() {
                f(Some(trim_cr(&buf)));
            }
            return Ok(());
        }
        match memchr::memchr(b'\n', avail) {
            Some(i) => {
                if overlong {
                    f(None);
                    overlong = false;
                } else if buf.is_empty() {
                    // The whole line is in the reader's buffer: no copy.
                    if i > max {
                        f(None);
                    } else {
                        f(Some(trim_cr(&avail[..i])));
                    }
                } else {
                    buf.extend_from_slice(&avail[..i]);
                    if buf.len() > max {
                        f(None);
                    } else {
                        f(Some(trim_cr(&buf)));
                    }
                    buf.clear();
                }
                r.consume(i + 1);
            }
            None => {
                let n = avail.len();
                if !overlong {
                    buf.extend_from_slice(avail);
                    if buf.len() > max {
                        overlong = true;
                        buf = Vec::new();
                    }
                }
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8], cap: usize, max: usize) -> Vec<Option<String>> {
        let mut r = BufReader::with_capacity(cap, data);
        let mut out = Vec::new();
        for_each_line(&mut r, max, |l| {
            out.push(l.map(|b| String::from_utf8_lossy(b).into_owned()));
        })
        .expect("in memory");
        out
    }

    #[test]
    fn splits_lines_across_buffer_boundaries() {
        let data = b"alpha\r\nbeta\n\ngamma-is-long\ndelta";
        for cap in [1, 2, 3, 7, 64] {
            let got = collect(data, cap, 100);
            let want: Vec<Option<String>> = ["alpha", "beta", "", "gamma-is-long", "delta"]
                .iter()
                .map(|s| Some((*s).to_owned()))
                .collect();
            assert_eq!(got, want, "cap {cap}");
        }
    }

    #[test]
    fn overlong_lines_are_reported_not_buffered() {
        for cap in [2, 4, 64] {
            let got = collect(b"ok\nthis-is-too-long\nok2\nlong-at-the-end", cap, 5);
            assert_eq!(
                got,
                vec![Some("ok".into()), None, Some("ok2".into()), None],
                "cap {cap}"
            );
        }
    }
}
