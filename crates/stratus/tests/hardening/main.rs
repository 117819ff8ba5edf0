//! Slow and abusive clients against a real listener on loopback: connection limits, the
//! listener's clocks, body limits in each protocol's shape, function slots under load, and an
//! attack while a normal client measures what it gets.
//!
//! A test binary of its own: the attack measures latency, which the other suites' tests running
//! beside it would distort. For the same reason its tests take turns ([`one_at_a_time`]).

#![allow(
    unreachable_pub,
    reason = "a test binary: its helpers are shared between its modules, never exported"
)]

#[path = "../it/support.rs"]
#[allow(
    dead_code,
    missing_debug_implementations,
    reason = "shared with the main test binary; not every helper is used here"
)]
mod support;

mod attack;
mod limits;
mod raw;
mod slots;
mod timeouts;

use std::net::SocketAddr;
use std::time::Duration;

use stratus::config::Config;
use support::TestApp;

pub const PASSWORD: &str = "Correct-Horse-9";

/// The tests of this binary run one after another.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Clocks short enough to watch: a head in 1 s, an idle keep-alive connection for 3 s, a body
/// in 1 s plus a second per KiB.
pub fn short_clocks(config: &mut Config) {
    config.server.header_read_timeout = Duration::from_secs(1);
    config.server.idle_timeout = Duration::from_secs(3);
    config.server.body_timeout = Duration::from_secs(1);
    config.server.body_min_rate = 1024;
    config.server.send_timeout = Duration::from_secs(1);
}

pub fn address(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().expect("socket address")
}

/// An author (member of `authors`): their access token.
pub async fn author_token(app: &TestApp) -> String {
    app.author_token("writer", PASSWORD).await
}

/// One counter of `/metrics` (OpenMetrics text), summed over its labels when `labels` is empty.
pub async fn metric(app: &TestApp, name: &str, labels: &str) -> f64 {
    let response = app.http.get(format!("{}/metrics", app.base)).send().await.expect("metrics");
    metric_in(&response.text().await.expect("text"), name, labels)
}

/// [`metric`] from a scrape already made.
pub fn metric_in(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && (labels.is_empty() || series.contains(labels))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}
