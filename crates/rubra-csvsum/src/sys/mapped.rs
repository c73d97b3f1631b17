//! Read-only memory-mapped windows of a file.
//!
//! Mapping avoids the kernel-to-user copy that `read` does, which cost as much
//! as the parsing itself on the benchmark machine. Windows are bounded (see
//! `WINDOW` in `parallel`) and unmapped after use, so resident memory stays
//! small whatever the file size.

use std::fs::File;
use std::io;

/// Maps `len` bytes of `file` at `offset` (any offset; the mapping is
/// page-aligned internally).
///
/// Pages are not populated up front (`MAP_POPULATE`): measured here, the
/// kernel's fault-around (16 pages per fault) cost about 30% less system time.
pub(crate) fn map(file: &File, offset: u64, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this process. The
    // remaining hazard is another process truncating or rewriting the file
    // while it is mapped, which can fault (SIGBUS) or show changing bytes;
    // `sum_file` documents that its file must not change during the call, and
    // `sum_read_at` is the alternative without that requirement.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }
}
