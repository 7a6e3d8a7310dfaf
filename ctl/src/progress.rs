//! Spinners on long operations (reshards, drains, benchmarks) and the polling loop behind every
//! wait. Progress goes to stderr and only when it is a terminal, so JSON on stdout stays clean.

use std::future::Future;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::error::CtlError;

/// A spinner with a message; hidden when stderr is not a terminal.
pub(crate) fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar that fills over `total` seconds (benchmarks).
pub(crate) fn timed_bar(total: Duration) -> ProgressBar {
    let bar = ProgressBar::new(total.as_secs().max(1));
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {elapsed:>4}/{duration} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// The state of something being waited for.
pub(crate) enum Poll<T> {
    Done(T),
    /// Not yet; the text says what was seen, for the spinner and a timeout message.
    Pending(String),
}

/// Polls `check` until it is done, with a spinner saying `what` and the last state seen. On
/// timeout the error names `check_cmd`, the command that shows how things stand.
pub(crate) async fn wait<T, F, Fut>(
    what: &str,
    check_cmd: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, CtlError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, CtlError>>,
{
    let bar = spinner(format!("waiting for {what}"));
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let last = match check().await {
            Ok(Poll::Done(v)) => {
                bar.finish_and_clear();
                return Ok(v);
            }
            Ok(Poll::Pending(state)) => state,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        bar.set_message(format!("waiting for {what}: {last}"));
        if Instant::now() + pause > deadline {
            bar.finish_and_clear();
            return Err(CtlError::WaitTimeout {
                what: what.to_string(),
                after: timeout,
                last,
                check: check_cmd.to_string(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
