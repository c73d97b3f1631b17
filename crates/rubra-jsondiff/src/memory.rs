//! The crate's only `unsafe` code: input files mapped into memory instead of
//! copied, and cache prefetch hints for the random reads of unordered matching.
//!
//! Reading a 50 MB file copies it out of the page cache into fresh pages that
//! the kernel must zero first (a quarter of the ordered run's CPU in `perf`);
//! a mapping shares the page cache's pages. Keyed and set matching read the
//! second document in a shuffled order, and every element is a cache miss;
//! prefetching a few elements ahead overlaps those misses.
#![allow(unsafe_code)]

#[cfg(feature = "cli")]
use std::fs::File;

/// A file's contents mapped read-only and checked once to be UTF-8 (files are read by the
/// command line only).
#[cfg(feature = "cli")]
pub(crate) struct MappedText(memmap2::Mmap);

#[cfg(feature = "cli")]
impl MappedText {
    /// Maps `file` (all pages at once: they are normally in the page cache) and
    /// checks that it is UTF-8; otherwise gives back the bytes and the offset of
    /// the first invalid one.
    pub(crate) fn map(file: &File) -> std::io::Result<Result<Self, (memmap2::Mmap, usize)>> {
        // SAFETY: the mapping is private and read-only, and nothing in this
        // process writes to the file. Another process truncating or rewriting
        // the file while we compare it is the known hazard of mapping files
        // (ripgrep accepts it the same way): at worst a SIGBUS or a wrong answer
        // for a file that changed during the run. The CLI maps regular files only.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        let checked = std::str::from_utf8(&map).map(|_| ());
        Ok(match checked {
            Ok(()) => Ok(MappedText(map)),
            Err(e) => Err((map, e.valid_up_to())),
        })
    }

    /// The text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `map` checked the whole mapping to be UTF-8, and the mapping is
        // read-only (see the hazard noted there).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// Asks the CPU to bring the cache line at `p` into the cache. A hint only: any
/// address is allowed and results never depend on it.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` never faults and never makes memory observable to the
    // program, whatever the address; SSE is part of every x86_64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the cache lines of `s` (at most `max` bytes from its start).
#[inline]
pub(crate) fn prefetch_slice<T>(s: &[T], max: usize) {
    let bytes = std::mem::size_of_val(s).min(max);
    let p = s.as_ptr().cast::<u8>();
    let mut off = 0;
    while off < bytes {
        prefetch(p.wrapping_add(off));
        off += 64;
    }
    if bytes > 0 {
        // The last byte, in case `p` is not line-aligned.
        prefetch(p.wrapping_add(bytes - 1));
    }
}

/// How many elements ahead each stage of [`Document::warm_ahead`] works.
const AHEAD: usize = 4;

impl crate::parse::Document {
    /// Before visiting element `k` of a list of `len` node ids of this document
    /// in an order that jumps around (`id(k)` gives them), warms the ones a few
    /// steps ahead in three stages, each reading only what the previous stage
    /// brought in: the node, then its members' nodes and names, then its text.
    #[inline]
    pub(crate) fn warm_ahead(&self, k: usize, len: usize, id: impl Fn(usize) -> u32) {
        use crate::parse::Node;
        if k + 3 * AHEAD < len {
            prefetch(self.nodes.as_ptr().wrapping_add(id(k + 3 * AHEAD) as usize));
        }
        if k + 2 * AHEAD < len {
            match self.nodes.get(id(k + 2 * AHEAD) as usize) {
                Some(&Node::Obj(f, n) | &Node::Arr(f, n)) => {
                    let r = f as usize..(f + n) as usize;
                    prefetch_slice(&self.nodes[r.clone()], 256);
                    prefetch_slice(&self.keys[r], 256);
                }
                Some(&Node::Num(s) | &Node::Str(s)) => self.warm_span(s, s),
                _ => {}
            }
        }
        if k + AHEAD < len
            && let Some(&Node::Obj(f, n)) = self.nodes.get(id(k + AHEAD) as usize)
            && n > 0
        {
            // From the first member's name to a little past the last one's.
            self.warm_span(self.keys[f as usize], self.keys[(f + n - 1) as usize]);
        }
    }

    /// Prefetches the source from span `a`'s start to 64 bytes past span `b`'s
    /// start (at most 512 bytes).
    fn warm_span(&self, a: crate::parse::Span, b: crate::parse::Span) {
        let src = self.source_bytes();
        let start = (a.start as usize).min(src.len());
        let end = (b.start as usize + 64).clamp(start, src.len());
        prefetch_slice(&src[start..end], 512);
    }
}
