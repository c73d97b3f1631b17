//! On-demand CPU profiles of the running process, rendered as flamegraph SVGs
//! (`GET /debug/profile`). Sampling uses `SIGPROF` (the `pprof` crate), so only one profile
//! can run at a time in a process; a second request is refused instead of queued.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Another profile of this process is running.
    #[error("a CPU profile is already being taken in this process")]
    Busy,
    /// The sampler or the flamegraph renderer failed.
    #[error("profiler: {0}")]
    Profiler(String),
}

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Clears [`RUNNING`] however the profile ends (including a dropped request future).
struct RunningFlag;

impl Drop for RunningFlag {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// Samples every thread of the process `frequency` times a second for `duration`, then
/// renders the samples as a flamegraph SVG.
///
/// The wait is async (the sampler runs from a signal handler); symbolizing and rendering run
/// on a blocking thread.
pub async fn cpu_flamegraph(duration: Duration, frequency: i32) -> Result<Vec<u8>, ProfileError> {
    if RUNNING
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(ProfileError::Busy);
    }
    let _flag = RunningFlag;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(frequency)
        // Unwinding through these from a signal handler can deadlock; their frames add nothing.
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| ProfileError::Profiler(e.to_string()))?;
    tokio::time::sleep(duration).await;
    tokio::task::spawn_blocking(move || {
        let report = guard
            .report()
            .build()
            .map_err(|e| ProfileError::Profiler(e.to_string()))?;
        drop(guard);
        if report.data.is_empty() {
            return Ok(idle_svg(duration));
        }
        let mut svg = Vec::new();
        report
            .flamegraph(&mut svg)
            .map_err(|e| ProfileError::Profiler(e.to_string()))?;
        Ok(svg)
    })
    .await
    .map_err(|e| ProfileError::Profiler(e.to_string()))?
}

/// The answer when no thread used the CPU while sampling (the renderer draws nothing then).
fn idle_svg(duration: Duration) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"600\" height=\"40\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"10\" y=\"25\">No CPU samples in {:.1} s: the process was idle.</text></svg>\n",
        duration.as_secs_f64()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy_work(until: std::time::Instant) -> u64 {
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
            }
        }
        x
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_profile_is_an_svg_and_a_second_one_at_once_is_refused() {
        let until = std::time::Instant::now() + Duration::from_millis(600);
        let worker = std::thread::spawn(move || busy_work(until));
        let first = tokio::spawn(cpu_flamegraph(Duration::from_millis(500), 199));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = cpu_flamegraph(Duration::from_millis(10), 99).await;
        assert!(matches!(second, Err(ProfileError::Busy)), "{second:?}");
        let svg = first.await.unwrap().unwrap();
        let _ = worker.join();
        let text = String::from_utf8(svg).unwrap();
        assert!(
            text.contains("<svg"),
            "not an SVG: {}",
            &text[..text.len().min(200)]
        );
        // Finished profiles free the slot; an idle process still gets an SVG.
        let idle = cpu_flamegraph(Duration::from_millis(10), 99).await.unwrap();
        assert!(String::from_utf8(idle).unwrap().contains("<svg"));
    }
}
