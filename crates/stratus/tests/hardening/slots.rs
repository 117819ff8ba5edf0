//! Function slots: HTTP and background functions have pools of their own; a saturated pool
//! of either kind makes `/readyz` unavailable; an HTTP function that runs too long is answered 504.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use stratus::item;
use stratus::ports::events::{BatchResponse, TableChange};
use stratus::ports::table::{KeyAttribute, Table, TableSpec};
use stratus::services::functions::StreamTrigger;
use tokio::sync::{Notify, Semaphore};

use crate::support::TestApp;
use crate::{metric, one_at_a_time};

/// HTTP functions that wait until released, counting how many have started.
#[derive(Clone)]
struct Gate {
    open: Arc<Semaphore>,
    started: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl Gate {
    fn new() -> Self {
        Self { open: Arc::new(Semaphore::new(0)), started: Arc::default(), notify: Arc::default() }
    }

    async fn pass(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        drop(self.open.acquire().await.expect("gate"));
    }

    async fn started(&self, count: usize) {
        loop {
            let notified = self.notify.notified();
            if self.started.load(Ordering::SeqCst) >= count {
                return;
            }
            notified.await;
        }
    }

    fn release(&self) {
        self.open.add_permits(1_000);
    }

    fn routes(&self) -> Router {
        let gate = self.clone();
        Router::new()
            .route(
                "/test/hold",
                get(move || {
                    let gate = gate.clone();
                    async move {
                        gate.pass().await;
                        "released"
                    }
                }),
            )
            .route("/test/quick", get(|| async { "quick" }))
    }
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.http.get(format!("{}/readyz", app.base)).send().await.expect("readyz");
    (response.status().as_u16(), response.json().await.expect("json"))
}

/// Polls `/readyz` until it answers `status` (within 5 s).
async fn until_readiness(app: &TestApp, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (now, body) = readiness(app).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unavailable_while_no_http_slot_is_free_and_ready_again_after() {
    let _turn = one_at_a_time().await;
    let gate = Gate::new();
    let routes = gate.routes();
    let app = TestApp::spawn_with(
        |config| {
            config.functions.http_concurrency = 2;
            config.functions.http_queue_timeout = Duration::from_millis(200);
            config.functions.saturation_threshold = Duration::from_millis(300);
        },
        move |app| app.mount(routes),
    )
    .await;
    let (_, ready) = readiness(&app).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["functions"][0]["pool"], "http");

    let held: Vec<_> =
        (0..2).map(|_| tokio::spawn(app.http.get(format!("{}/test/hold", app.base)).send())).collect();
    gate.started(2).await;
    let unavailable = until_readiness(&app, 503).await;
    assert_eq!(unavailable["status"], "unavailable");
    assert_eq!(unavailable["functions"][0]["in_use"], 2);
    let problems = unavailable["problems"].to_string();
    assert!(problems.contains("no free http function slot"), "{unavailable}");

    // A request finds no slot within the queue timeout: 503, try again.
    let refused = app.http.get(format!("{}/test/quick", app.base)).send().await.expect("request");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(metric(&app, "stratus_function_rejections_total", r#"pool="http""#).await, 1.0);

    gate.release();
    for request in held {
        assert_eq!(request.await.expect("task").expect("response").status(), 200);
    }
    let ready = until_readiness(&app, 200).await;
    assert_eq!(ready["functions"][0]["saturated_ms"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_load_never_takes_background_slots_and_background_load_never_takes_http_slots() {
    let _turn = one_at_a_time().await;
    let gate = Gate::new();
    let routes = gate.routes();
    let background_gate = Gate::new();
    let consumed = Arc::new(AtomicUsize::new(0));
    let (in_function, counter) = (background_gate.clone(), Arc::clone(&consumed));
    let app = TestApp::spawn_with(
        |config| {
            config.functions.http_concurrency = 1;
            config.functions.background_concurrency = 1;
            config.functions.http_queue_timeout = Duration::from_millis(200);
            config.functions.saturation_threshold = Duration::from_millis(300);
        },
        move |app| {
            app.mount(routes);
            let jobs =
                app.platform().table(TableSpec::new("jobs", KeyAttribute::string("id"))).expect("table");
            let trigger = StreamTrigger::new(&app.config().stream);
            app.host_mut()
                .on_table_change(
                    "jobs",
                    jobs.stream_source(),
                    trigger,
                    move |_, changes: Vec<TableChange>| {
                        let (gate, counter) = (in_function.clone(), Arc::clone(&counter));
                        async move {
                            for change in &changes {
                                if change.dynamodb.keys["id"].as_s() == Some("block") {
                                    gate.pass().await;
                                }
                                counter.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(BatchResponse::success())
                        }
                    },
                )
                .expect("register");
        },
    )
    .await;
    let jobs = app.platform.table(TableSpec::new("jobs", KeyAttribute::string("id"))).expect("table");

    // Every HTTP slot held: a table change is still delivered.
    let held = tokio::spawn(app.http.get(format!("{}/test/hold", app.base)).send());
    gate.started(1).await;
    jobs.put(item! { "id" => "one" }, None).await.expect("put");
    app.drain().await;
    assert_eq!(consumed.load(Ordering::SeqCst), 1);
    gate.release();
    assert_eq!(held.await.expect("task").expect("response").status(), 200);

    // Every background slot held: HTTP functions still answer.
    jobs.put(item! { "id" => "block" }, None).await.expect("put");
    background_gate.started(1).await;
    let quick = app.http.get(format!("{}/test/quick", app.base)).send().await.expect("request");
    assert_eq!(quick.status(), 200);
    assert_eq!(quick.text().await.expect("body"), "quick");
    // Consumers cannot make progress: the server says so.
    let stalled = until_readiness(&app, 503).await;
    assert!(stalled["problems"].to_string().contains("no free background function slot"), "{stalled}");
    background_gate.release();
    app.drain().await;
    assert_eq!(consumed.load(Ordering::SeqCst), 2);
    until_readiness(&app, 200).await;
    app.stop().await;
}

async fn panics() -> &'static str {
    panic!("this function panics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_function_past_its_timeout_gets_504_and_a_panicking_one_500_and_both_free_their_slot() {
    let _turn = one_at_a_time().await;
    let routes = Router::new()
        .route("/test/forever", get(std::future::pending::<&'static str>))
        .route("/test/panic", get(panics));
    let app = TestApp::spawn_with(
        |config| {
            config.functions.http_concurrency = 1;
            config.functions.http_timeout = Duration::from_millis(300);
            config.functions.http_queue_timeout = Duration::from_millis(100);
        },
        move |app| app.mount(routes),
    )
    .await;
    for _ in 0..2 {
        let response = app.http.get(format!("{}/test/forever", app.base)).send().await.expect("request");
        assert_eq!(response.status(), 504, "the second finds the slot free again");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], 504);
    }
    let panicked = app.http.get(format!("{}/test/panic", app.base)).send().await.expect("request");
    assert_eq!(panicked.status(), 500);
    assert_eq!(panicked.headers()["content-type"], "application/problem+json");
    let after = app.http.get(format!("{}/test/forever", app.base)).send().await.expect("request");
    assert_eq!(after.status(), 504);
    assert_eq!(metric(&app, "stratus_function_timeouts_total", r#"pool="http""#).await, 3.0);
    app.stop().await;
}
