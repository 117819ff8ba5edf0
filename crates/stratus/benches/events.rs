//! Subscribe → welcome email: the latency from the `POST /v1/subscribers` request to the
//! welcome message in the outbox, at 100 subscriptions per second, through the whole server
//! (HTTP, table, change stream, `welcome-email` function, file outbox).
//!
//! `cargo bench -p stratus --bench events`

use std::time::{Duration, Instant};

use stratus::app::Application;
use stratus::config::Config;

const RATE_PER_SECOND: u64 = 100;
const SUBSCRIPTIONS: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

async fn run() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), stage: "bench".into(), ..Config::default() };
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.blog.subscribe_per_address_per_minute = 1_000_000;
    config.log.filter = "warn".into();
    let outbox = config.stage_dir().join("outbox");
    let mut app = Application::build(config).await.expect("app");
    app.host_mut().start().expect("functions");
    let drainer = app.host_mut().drainer();
    let url = format!("http://{}/v1/subscribers", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    // A watcher notes when each expected message appears (file times are too coarse for this).
    let (expect, expected) = std::sync::mpsc::channel::<(std::path::PathBuf, Instant)>();
    let watcher = std::thread::spawn(move || {
        let mut pending: Vec<(std::path::PathBuf, Instant)> = Vec::new();
        let mut latencies = Vec::with_capacity(SUBSCRIPTIONS);
        while latencies.len() < SUBSCRIPTIONS {
            pending.extend(expected.try_iter());
            pending.retain(|(path, sent)| {
                if path.exists() {
                    latencies.push(sent.elapsed());
                    return false;
                }
                true
            });
            // The resolution of the measurement; a bench-only poll, not a wait in a test.
            std::thread::sleep(Duration::from_micros(100));
        }
        latencies
    });

    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    let mut requests = Vec::with_capacity(SUBSCRIPTIONS);
    for n in 0..SUBSCRIPTIONS {
        ticks.tick().await;
        let (client, url, expect) = (client.clone(), url.clone(), expect.clone());
        let token = stratus::ports::mail::message_token(&format!("welcome/reader{n}@example.com"));
        let path = outbox.join(format!("{token}.eml"));
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            expect.send((path, sent)).expect("watcher");
            let body = serde_json::json!({ "email": format!("reader{n}@example.com") });
            let response = client.post(url).json(&body).send().await;
            assert_eq!(response.expect("request").status(), 202);
        }));
    }
    for request in requests {
        request.await.expect("request task");
    }
    drainer.drain().await.expect("drain");
    let mut latencies = watcher.join().expect("watcher");
    latencies.sort();
    println!(
        "subscribe -> welcome email in the outbox, {SUBSCRIPTIONS} subscriptions at {RATE_PER_SECOND}/s:"
    );
    println!(
        "  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: p99 <= 50 ms)",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    let _ = stop.send(());
    server.await.expect("server").expect("clean shutdown");
}
