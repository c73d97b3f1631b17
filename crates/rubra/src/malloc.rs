//! glibc's allocator, tuned at start-up for the servers' ~1 MB request and response
//! buffers (issue #24): by default each one is a fresh `mmap` or is trimmed off the top of
//! a heap when freed, so every request faulted ~120 pages in again (a zeroed page each, ~7 %
//! of the CPU of `POST /watermark` in BENCHMARKS.md, "Session 14").
#![allow(unsafe_code)]

/// Blocks up to this size come from the allocator's heaps, not from their own `mmap`
/// (glibc's default is 128 KiB, raised by itself to the size of a freed mapping).
const MMAP_THRESHOLD: i32 = 4 << 20;

/// Free memory at the top of a heap is given back to the kernel only past this (glibc's
/// default is twice the mmap threshold): a few requests' buffers per heap stay mapped.
const TRIM_THRESHOLD: i32 = 16 << 20;

/// Sets the thresholds above, unless the operator tuned malloc with `GLIBC_TUNABLES`.
/// Returns whether both were set (always false off glibc).
pub(crate) fn tune() -> bool {
    if std::env::var_os("GLIBC_TUNABLES")
        .is_some_and(|t| t.to_string_lossy().contains("glibc.malloc."))
    {
        return false;
    }
    set_thresholds()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // SAFETY: `mallopt` only changes the allocator's parameters; it is called at start-up
    // with documented parameters and in-range values, and glibc takes its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_both_thresholds() {
        assert!(super::set_thresholds());
    }
}
