//! Parallel sums of a sequential stream of chunks (a download, a pipe).
//!
//! The calling thread pulls chunks and groups them, without copying, into batches of
//! about 4 MiB; each batch goes to a worker, which sums it from just after its first
//! newline, speculatively, as [`sum_bytes`](crate::sum_bytes) does with regions. The
//! calling thread merges the results in order: it feeds each batch's head (up to that
//! first newline) to the merged summer, then takes the worker's result if the merged
//! summer ended exactly on a record boundary there, and otherwise sums the batch again
//! itself. At most `2 × threads + 1` batches are held at once, so memory stays bounded.
//!
//! Batches hold the caller's chunks rather than a copy: a [`Summer`] takes its input
//! in pieces anyway, and copying every byte once more into contiguous 4 MiB buffers
//! (fresh pages each time) cost CPU that a download sharing two cores cannot spare.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, mpsc};

use crate::{Control, CsvSumError, SumOptions, Summary, Summer};

/// Bytes per batch handed to a worker (unless [`Control::min_region`] is set).
const BATCH: usize = 4 << 20;

/// Consecutive chunks of the input, summed as one unit of work.
struct Chunks<B> {
    parts: Vec<B>,
    len: usize,
}

impl<B: AsRef<[u8]>> Chunks<B> {
    /// Feeds bytes `from..to` of the batch (offsets within the batch) to `summer`.
    fn feed(&self, summer: &mut Summer, from: usize, to: usize) {
        let mut at = 0;
        for part in &self.parts {
            let part = part.as_ref();
            let (lo, hi) = (from.max(at), to.min(at + part.len()));
            if lo < hi {
                summer.feed_raw(&part[lo - at..hi - at]);
            }
            at += part.len();
            if at >= to {
                break;
            }
        }
    }

    /// Length of the head: the bytes up to and including the first newline (all of
    /// them if there is none).
    fn head(&self) -> usize {
        let mut at = 0;
        for part in &self.parts {
            let part = part.as_ref();
            if let Some(i) = memchr::memchr(b'\n', part) {
                return at + i + 1;
            }
            at += part.len();
        }
        at
    }
}

struct Job<B> {
    index: usize,
    batch: Arc<Chunks<B>>,
    /// Length of the head: the bytes up to and including the first newline.
    head: usize,
    /// Input offset of the batch's first byte.
    offset: u64,
}

struct Batch<B> {
    chunks: Arc<Chunks<B>>,
    head: usize,
}

/// Sums a stream of chunks on all cores.
///
/// The calling thread pulls chunks and groups them (without copying) into batches
/// of about 4 MiB; workers sum each batch from just after its first newline, speculatively;
/// the calling thread merges the results in order, feeding each batch's head
/// itself and summing a batch again if its first newline turned out to be
/// inside quotes. At most `2 × threads + 1` batches are held at once.
///
/// The iterator runs on the calling thread and may block (for example on a
/// channel fed by an async download). Chunks may have any size and may split
/// records, quoted fields or `\r\n` pairs anywhere. A read error from the
/// iterator stops the run with [`CsvSumError::Io`].
///
/// ```
/// use rubra_csvsum::{Control, SumOptions, sum_chunks};
///
/// let parts: Vec<std::io::Result<&[u8]>> = vec![Ok(b"a,b\n1,2"), Ok(b".5\n3,\"4"), Ok(b"\"\n")];
/// let options = SumOptions { step: 2, ..SumOptions::default() };
/// let summary = sum_chunks(parts, &options, &Control::default())?;
/// assert_eq!((summary.rows, summary.columns[0].sum.as_str()), (2, "6.5"));
/// # Ok::<(), rubra_csvsum::CsvSumError>(())
/// ```
pub fn sum_chunks<I, B>(
    chunks: I,
    options: &SumOptions,
    control: &Control<'_>,
) -> Result<Summary, CsvSumError>
where
    I: IntoIterator<Item = io::Result<B>>,
    B: AsRef<[u8]> + Send + Sync,
{
    options.validate()?;
    let threads = control.threads().max(1);
    if threads == 1 {
        let mut summer = Summer::new(options.clone())?;
        for chunk in chunks {
            control.check()?;
            let chunk = chunk?;
            let rows = summer.rows();
            summer.feed(chunk.as_ref())?;
            if let Some(p) = control.progress {
                p.add(chunk.as_ref().len() as u64, summer.rows() - rows);
            }
        }
        return summer.finish();
    }

    let batch_len = match control.min_region {
        0 => BATCH,
        n => usize::try_from(n).unwrap_or(BATCH).max(1),
    };
    let (job_tx, job_rx) = mpsc::sync_channel::<Job<B>>(threads);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<(usize, Summer)>();
        for _ in 0..threads {
            let job_rx = &job_rx;
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => match rx.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        },
                        Err(_) => return,
                    };
                    let start = if job.index == 0 { 0 } else { job.head };
                    let header = job.index == 0 && options.header;
                    let mut s = Summer::at(options, job.offset + start as u64, header);
                    job.batch.feed(&mut s, start, job.batch.len);
                    if let Some(p) = control.progress {
                        p.add((job.batch.len - start) as u64, s.rows());
                    }
                    if done_tx.send((job.index, s)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut merge = Merge {
            acc: None,
            next: 0,
            batches: BTreeMap::new(),
            results: BTreeMap::new(),
            control,
        };
        let mut sent = 0usize;
        let mut offset = 0u64;
        let mut pending = Chunks {
            parts: Vec::new(),
            len: 0,
        };
        let mut send =
            |chunks: Chunks<B>, merge: &mut Merge<'_, '_, B>| -> Result<(), CsvSumError> {
                let head = chunks.head();
                let batch = Arc::new(chunks);
                let len = batch.len as u64;
                merge.batches.insert(
                    sent,
                    Batch {
                        chunks: Arc::clone(&batch),
                        head,
                    },
                );
                let job = Job {
                    index: sent,
                    batch,
                    head,
                    offset,
                };
                job_tx
                    .send(job)
                    .map_err(|_| io::Error::other("csvsum worker stopped"))?;
                sent += 1;
                offset += len;
                // Bound memory: wait for results while too many batches are held.
                while merge.batches.len() > 2 * threads {
                    merge.wait(&done_rx)?;
                }
                Ok(())
            };
        for chunk in chunks {
            control.check()?;
            let chunk = chunk?;
            let n = chunk.as_ref().len();
            if n == 0 {
                continue;
            }
            pending.parts.push(chunk);
            pending.len += n;
            if pending.len >= batch_len {
                let full = std::mem::replace(
                    &mut pending,
                    Chunks {
                        parts: Vec::new(),
                        len: 0,
                    },
                );
                send(full, &mut merge)?;
            }
        }
        if pending.len > 0 {
            send(pending, &mut merge)?;
        }
        // No more jobs: idle workers see the channel close and return.
        drop(job_tx);
        while !merge.batches.is_empty() {
            merge.wait(&done_rx)?;
        }
        match merge.acc {
            Some(acc) => acc.finish(),
            None => Summer::new(options.clone())?.finish(),
        }
    })
}

/// The in-order merge of batch results.
struct Merge<'c, 'a, B> {
    acc: Option<Summer>,
    /// Index of the next batch to merge.
    next: usize,
    batches: BTreeMap<usize, Batch<B>>,
    results: BTreeMap<usize, Summer>,
    control: &'c Control<'a>,
}

impl<B: AsRef<[u8]>> Merge<'_, '_, B> {
    /// Waits for one result and merges every batch that is now ready.
    fn wait(&mut self, done: &mpsc::Receiver<(usize, Summer)>) -> Result<(), CsvSumError> {
        let (i, s) = done
            .recv()
            .map_err(|_| io::Error::other("csvsum worker stopped"))?;
        self.results.insert(i, s);
        while let Some(s) = self.results.remove(&self.next) {
            let batch = self
                .batches
                .remove(&self.next)
                .ok_or_else(|| io::Error::other("csvsum batch missing"))?;
            self.next += 1;
            let Some(acc) = self.acc.as_mut() else {
                self.acc = Some(s);
                continue;
            };
            if acc.failed() {
                continue;
            }
            let rows = acc.rows();
            batch.chunks.feed(acc, 0, batch.head);
            if let Some(p) = self.control.progress {
                p.add(batch.head as u64, acc.rows() - rows);
            }
            if acc.at_record_start() {
                acc.absorb(s);
            } else {
                // The batch's first newline was inside quotes: sum it again.
                batch.chunks.feed(acc, batch.head, batch.chunks.len);
            }
        }
        Ok(())
    }
}
