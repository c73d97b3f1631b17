//! Waiting for something that happens in the background (a worker, another process, a log
//! line): poll until it holds, or fail with the last thing seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// The first pause between two checks; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Checks `check` until it answers `Ok`, and returns that value; panics after `within`,
/// showing the last `Err` (what was seen instead). The pause between checks grows from 10 ms
/// to 200 ms, so a quick condition is seen quickly and a slow one costs few checks.
pub async fn eventually<T, E, Fut>(within: Duration, mut check: impl FnMut() -> Fut) -> T
where
    E: Debug,
    Fut: Future<Output = Result<T, E>>,
{
    let until = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(Instant::now() < until, "not within {within:?}: {last:?}");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// [`eventually`] for tests without a runtime: `check` runs on this thread, which sleeps
/// between checks.
pub fn eventually_blocking<T, E: Debug>(
    within: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let until = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => {
                assert!(Instant::now() < until, "not within {within:?}: {last:?}");
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn returns_the_first_ok_after_some_errs() {
        let n = Cell::new(0);
        let got = eventually(Duration::from_secs(5), || {
            n.set(n.get() + 1);
            let v = n.get();
            async move { if v >= 3 { Ok(v) } else { Err(v) } }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "not within 50ms: \"still waiting\"")]
    async fn fails_with_the_last_thing_seen() {
        eventually::<(), _, _>(Duration::from_millis(50), || async { Err("still waiting") }).await;
    }

    #[test]
    fn the_blocking_form_does_the_same() {
        let mut n = 0;
        assert_eq!(
            eventually_blocking(Duration::from_secs(5), || {
                n += 1;
                if n >= 2 { Ok(n) } else { Err(n) }
            }),
            2
        );
        let r = std::panic::catch_unwind(|| {
            eventually_blocking::<(), _>(Duration::from_millis(30), || Err("no"))
        });
        assert!(r.is_err());
    }
}
