//! Deadline polling: the only way tests wait for the cluster. A condition is polled with a short,
//! growing pause until it holds or the deadline passes; then the test panics naming what it
//! waited for. A poll that hangs is cut off by the same deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Polls `f` until it returns true. Panics with `what` when `deadline` passes first.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(deadline, what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls `f` until it returns `Some` and returns the value. Panics with `what` when `deadline`
/// passes first.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match try_wait_for(deadline, &mut f).await {
        Some(v) => v,
        None => panic!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// Polls `f` until it returns `Ok` and returns the value. When `deadline` passes first, panics
/// with `what` and the last error, which says why the condition did not hold.
pub async fn wait_ok<T, E, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let end = Instant::now() + deadline;
    let mut pause = FIRST_PAUSE;
    let mut last = "no attempt finished".to_string();
    loop {
        match tokio::time::timeout_at(end, f()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= end {
            panic!("timed out after {deadline:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(pause.min(end - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Like [`wait_for`], but `None` instead of a panic when the deadline passes.
pub async fn try_wait_for<T, F, Fut>(deadline: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    let mut pause = FIRST_PAUSE;
    loop {
        let now = Instant::now();
        if now >= end {
            return None;
        }
        if let Ok(Some(v)) = tokio::time::timeout_at(end, f()).await {
            return Some(v);
        }
        let now = Instant::now();
        if now >= end {
            return None;
        }
        tokio::time::sleep(pause.min(end - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let n = Arc::new(AtomicU32::new(0));
        wait_until(Duration::from_secs(5), "three polls", || {
            let n = n.clone();
            async move { n.fetch_add(1, Ordering::SeqCst) >= 2 }
        })
        .await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
        let v = wait_for(Duration::from_secs(5), "a value", || async { Some(7) }).await;
        assert_eq!(v, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible")]
    async fn panics_with_what_on_timeout() {
        wait_until(Duration::from_millis(50), "the impossible", || async {
            false
        })
        .await;
    }

    #[tokio::test]
    async fn wait_ok_returns_the_value() {
        let mut n = 0;
        let v = wait_ok(Duration::from_secs(5), "the third try", || {
            n += 1;
            let n = n;
            async move {
                if n < 3 {
                    Err(format!("try {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "last: still 1 missing")]
    async fn wait_ok_panics_with_the_last_error() {
        wait_ok(Duration::from_millis(50), "nothing missing", || async {
            Err::<(), _>("still 1 missing")
        })
        .await;
    }

    #[tokio::test]
    async fn a_hanging_poll_is_cut_off_by_the_deadline() {
        let started = std::time::Instant::now();
        let got = try_wait_for(Duration::from_millis(100), || async {
            std::future::pending::<Option<()>>().await
        })
        .await;
        assert!(got.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
