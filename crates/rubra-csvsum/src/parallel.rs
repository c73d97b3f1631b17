//! Summing a whole input on all cores: a byte slice, a local file, or any
//! source that can read a byte range at an offset ([`ReadAt`]).
//!
//! The input is cut into regions just after a newline; the regions are summed
//! in parallel and merged in order, exactly. A region after the first is
//! summed *speculatively*, assuming that the newline before it ends a record
//! (is outside quotes). The merge checks that assumption: the summer of all
//! earlier regions must end exactly there, outside quotes and between
//! records. When it does not (the newline was inside a quoted field), the
//! region's speculative result is thrown away and the region is summed again
//! after the earlier ones, sequentially. The result is therefore always the
//! one a single sequential pass gives; only a newline inside quotes exactly at
//! a cut costs time, not correctness.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::{CsvSumError, SumOptions, Summary, Summer};

/// Bytes handed to a summer at a time (small enough to stay in L2 cache).
const CHUNK: usize = 256 << 10;
/// Bytes of a file mapped at a time by one thread.
const WINDOW: u64 = 16 << 20;
/// Smallest region worth a thread of its own.
const MIN_REGION: u64 = 8 << 20;

/// A source that can read bytes at any offset, from several threads at once.
///
/// Implemented for [`std::fs::File`] on Unix. An object-store client can
/// implement it with ranged GETs to sum a remote object on all cores.
pub trait ReadAt: Sync {
    /// Total length of the input in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 only at the end of the input).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

/// Live counters of a running sum, readable from another thread.
///
/// `bytes` counts input bytes scanned; during a parallel run `rows` may run
/// slightly ahead of the final count when a speculative region is redone.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
    rows: AtomicU64,
}

impl Progress {
    /// Fresh counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Input bytes scanned so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Data records counted so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, bytes: u64, rows: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }
}

/// How a run is driven: cancellation, progress and threads. All optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct Control<'a> {
    /// When set to `true`, the run stops within one chunk (256 KiB per thread)
    /// and returns [`CsvSumError::Canceled`].
    pub cancel: Option<&'a AtomicBool>,
    /// Counters updated after every chunk.
    pub progress: Option<&'a Progress>,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Smallest region of the input given to a thread, in bytes; 0 means
    /// 8 MiB (4 MiB batches for [`sum_chunks`](crate::sum_chunks)). Smaller
    /// inputs are summed on one thread. Tests lower it to exercise the merging
    /// on small inputs.
    pub min_region: u64,
}

impl Control<'_> {
    pub(crate) fn check(&self) -> Result<(), CsvSumError> {
        match self.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(CsvSumError::Canceled),
            _ => Ok(()),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Sums a CSV held in memory, on all cores.
///
/// The input is cut into regions just after a newline (about 16 per
/// thread, at least 8 MiB each); regions are summed in parallel, each
/// assuming that it starts on a record boundary, and merged in order. The
/// merge checks that every assumption held (the records before a cut ended
/// exactly there, outside quotes) and sums again, sequentially, any region
/// whose cut fell on a newline inside a quoted field. The result is always
/// the one a sequential pass gives.
pub fn sum_bytes(
    data: &[u8],
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    run(Input::Bytes(data), data.len() as u64, options, control)
}

/// Sums a local CSV file on all cores.
///
/// The file is memory-mapped in windows of 16 MiB per thread (no copy from
/// the page cache; resident memory stays bounded). **The file must not be
/// truncated or rewritten during the call**: with a mapping that can crash the
/// process (SIGBUS). For files that may change, use [`sum_read_at`] with the
/// opened [`File`](std::fs::File), which reads with `pread` instead (about
/// 5-30% more CPU time on the benchmark machine). Files that cannot be mapped
/// fall back to `pread`; pipes and devices are read as a stream.
#[cfg(unix)]
pub fn sum_file(
    path: impl AsRef<Path>,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    sum_open_file(std::fs::File::open(path)?, options, control)
}

/// [`sum_file`] of a file already opened (for example through a capability
/// that confined the open to a directory), with the same warning.
#[cfg(unix)]
pub fn sum_open_file(
    file: std::fs::File,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        // A pipe or a device: no length, no positioned reads.
        return sum_reader(file, options, control);
    }
    let len = meta.len();
    if len == 0 || crate::sys::mapped::map(&file, 0, 1).is_err() {
        return sum_read_at(&file, options, control);
    }
    run(Input::Mapped(&file), len, options, control)
}

/// Sums any [`ReadAt`] source on all cores.
pub fn sum_read_at(
    source: &dyn ReadAt,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    let len = source.size()?;
    run(Input::Reader(source), len, options, control)
}

/// Sums a sequential stream (a pipe, a download) on all cores, through
/// [`sum_chunks`](crate::sum_chunks): this thread reads, workers parse.
///
/// For a stream that can break and be resumed, drive a [`Summer`] directly.
pub fn sum_reader(
    mut reader: impl Read,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    let chunks = std::iter::from_fn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    buf.truncate(n);
                    return Some(Ok(buf));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
    });
    crate::sum_chunks(chunks, options, control)
}

#[derive(Clone, Copy)]
enum Input<'a> {
    Bytes(&'a [u8]),
    Reader(&'a dyn ReadAt),
    #[cfg(unix)]
    Mapped(&'a std::fs::File),
}

impl Input<'_> {
    /// Offset of the first `\n` at or after `from`, if any.
    fn find_newline(&self, from: u64, len: u64) -> Result<Option<u64>, CsvSumError> {
        match self {
            Input::Bytes(d) => {
                Ok(memchr::memchr(b'\n', &d[from as usize..]).map(|i| from + i as u64))
            }
            #[cfg(unix)]
            Input::Mapped(f) => Input::Reader(*f).find_newline(from, len),
            Input::Reader(r) => {
                let mut buf = vec![0u8; 64 << 10];
                let mut at = from;
                while at < len {
                    let n = r.read_at(&mut buf, at)?;
                    if n == 0 {
                        break;
                    }
                    if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                        return Ok(Some(at + i as u64));
                    }
                    at += n as u64;
                }
                Ok(None)
            }
        }
    }

    /// Feeds bytes `start..end` to `summer`, chunk by chunk.
    fn feed(
        &self,
        start: u64,
        end: u64,
        summer: &mut Summer,
        control: &Control<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<(), CsvSumError> {
        #[cfg(unix)]
        if let Input::Mapped(f) = self {
            let mut at = start;
            while at < end && !summer.failed() {
                let len = (end - at).min(WINDOW);
                let map = crate::sys::mapped::map(f, at, len as usize)?;
                Input::Bytes(&map).feed(0, len, summer, control, buf)?;
                at += len;
            }
            return Ok(());
        }
        let mut at = start;
        while at < end && !summer.failed() {
            control.check()?;
            let want = (end - at).min(CHUNK as u64) as usize;
            let rows = summer.rows();
            let got = match self {
                #[cfg(unix)]
                Input::Mapped(_) => unreachable!("handled above"),
                Input::Bytes(d) => {
                    summer.feed_raw(&d[at as usize..at as usize + want]);
                    want
                }
                Input::Reader(r) => {
                    buf.resize(CHUNK, 0);
                    let n = loop {
                        match r.read_at(&mut buf[..want], at) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e.into()),
                        }
                    };
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                    }
                    summer.feed_raw(&buf[..n]);
                    n
                }
            };
            at += got as u64;
            if let Some(p) = control.progress {
                p.add(got as u64, summer.rows() - rows);
            }
        }
        Ok(())
    }
}

fn run(
    input: Input<'_>,
    len: u64,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError> {
    let (summer, _redone) = run_regions(input, len, options, control)?;
    summer.finish()
}

/// Sums the regions in parallel and merges them; also returns how many
/// regions had to be summed again because their speculative start was wrong.
fn run_regions(
    input: Input<'_>,
    len: u64,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<(Summer, usize), CsvSumError> {
    options.validate()?;
    let threads = control.threads().max(1);
    let wanted = if threads == 1 {
        1
    } else {
        let min_region = match control.min_region {
            0 => MIN_REGION,
            n => n,
        };
        (threads as u64 * 16).min(len / min_region).max(1)
    };

    // Region starts: just after the first newline at or after each even cut.
    let mut starts = vec![0u64];
    for k in 1..wanted {
        let cut = len * k / wanted;
        if let Some(nl) = input.find_newline(cut, len)? {
            let start = nl + 1;
            if start < len && start > *starts.last().unwrap_or(&0) {
                starts.push(start);
            }
        }
    }
    let ends: Vec<u64> = starts.iter().skip(1).copied().chain([len]).collect();
    let regions = starts.len();

    let next = AtomicUsize::new(0);
    let work = |_: usize| -> Result<Vec<(usize, Summer)>, CsvSumError> {
        let mut done = Vec::new();
        let mut buf = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= regions {
                return Ok(done);
            }
            let mut s = Summer::at(options, starts[i], i == 0 && options.header);
            input.feed(starts[i], ends[i], &mut s, control, &mut buf)?;
            done.push((i, s));
        }
    };
    let results: Vec<Result<Vec<(usize, Summer)>, CsvSumError>> = if regions == 1 {
        vec![work(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.min(regions))
                .map(|t| scope.spawn(move || work(t)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut summers: Vec<Option<Summer>> = (0..regions).map(|_| None).collect();
    for r in results {
        for (i, s) in r? {
            summers[i] = Some(s);
        }
    }

    // Merge in order, redoing a region whose speculative start was wrong.
    let mut summers = summers.into_iter();
    let mut acc = summers
        .next()
        .flatten()
        .ok_or(CsvSumError::InvalidOptions("no region was summed"))?;
    let mut buf = Vec::new();
    let mut redone = 0;
    for (i, s) in summers.enumerate() {
        let i = i + 1;
        if acc.failed() {
            break;
        }
        match s {
            Some(s) if acc.at_record_start() => acc.absorb(s),
            _ => {
                redone += 1;
                input.feed(starts[i], ends[i], &mut acc, control, &mut buf)?;
            }
        }
    }
    Ok((acc, redone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redone(csv: &[u8]) -> usize {
        let control = Control {
            threads: 4,
            min_region: 1,
            ..Control::default()
        };
        let (_, redone) = run_regions(
            Input::Bytes(csv),
            csv.len() as u64,
            &SumOptions::default(),
            &control,
        )
        .expect("sum");
        redone
    }

    #[test]
    fn regions_are_not_redone_without_quoted_newlines() {
        let csv = "a,b,c\n1,\"x,y\",3\n".repeat(500);
        assert_eq!(redone(csv.as_bytes()), 0);
    }

    #[test]
    fn a_cut_inside_a_quoted_newline_is_redone() {
        // Every line but the header ends inside a quoted field, so some cut
        // must land on a newline that is inside quotes.
        let csv = format!("a,b\n{}", "1,\"x\n\ny\"\n".repeat(500));
        assert!(redone(csv.as_bytes()) > 0);
    }
}
