use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use stratus::app::Application;
use stratus::item;
use stratus::ports::events::{BatchResponse, TableChange};
use stratus::ports::table::sqlite::SqliteTable;
use stratus::ports::table::{KeyAttribute, Table, TableSpec};
use stratus::services::functions::{FunctionError, Host, StreamTrigger};

use crate::support::{Recorder, TestPlatform, test_config};

fn jobs_table(test: &TestPlatform) -> SqliteTable {
    test.platform.table(TableSpec::new("jobs", KeyAttribute::string("id"))).expect("table")
}

fn job_id(change: &TableChange) -> String {
    change.dynamodb.keys["id"].as_s().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn http_functions_are_served_with_a_request_id() {
    let dir = tempfile::TempDir::new().expect("dir");
    let mut app = Application::build(test_config(dir.path())).await.expect("app");
    app.mount(Router::new().route("/v1/hello", get(|| async { "hello from a function" })));
    let base = app.public_url().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    let response = reqwest::get(format!("{base}/v1/hello")).await.expect("request");
    assert_eq!(response.status(), 200);
    let request_id =
        response.headers().get("x-request-id").expect("request id").to_str().expect("ascii").to_owned();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    assert_eq!(response.text().await.expect("body"), "hello from a function");
    let missing = reqwest::get(format!("{base}/v1/nothing-here")).await.expect("request");
    assert_eq!(missing.status(), 404);

    stop.send(()).expect("stop");
    server.await.expect("server task").expect("clean shutdown");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_invocation_finish_and_checkpoints_it() {
    let mut test = TestPlatform::new();
    let table = jobs_table(&test);
    let (started, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let finished = Recorder::<String>::default();
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let (on_start, on_release, done) = (Arc::clone(&started), Arc::clone(&release), finished.clone());
    host.on_table_change(
        "graceful",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, batch| {
            let (on_start, on_release, done) = (Arc::clone(&on_start), Arc::clone(&on_release), done.clone());
            async move {
                on_start.notify_one();
                on_release.notified().await;
                batch.iter().for_each(|change| {
                    done.push(job_id(change));
                });
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    table.put(item! { "id" => "job-1" }, None).await.expect("put");
    started.notified().await;
    let stopping = tokio::spawn(host.shutdown());
    release.notify_one();
    stopping.await.expect("shutdown");
    assert_eq!(finished.all(), ["job-1"], "the in-flight invocation completed");

    // After a restart nothing is delivered again: the checkpoint was written before stopping.
    drop(table);
    test.reopen();
    let table = jobs_table(&test);
    let redelivered = Recorder::<String>::default();
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let seen = redelivered.clone();
    host.on_table_change(
        "graceful",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, batch| {
            let seen = seen.clone();
            async move {
                batch.iter().for_each(|change| {
                    seen.push(job_id(change));
                });
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert!(redelivered.all().is_empty(), "got {:?}", redelivered.all());
}

#[tokio::test]
async fn panics_and_timeouts_are_failures_that_are_retried() {
    let mut test = TestPlatform::new();
    test.config.functions.background_timeout = Duration::from_millis(50);
    test.reopen();
    let table = jobs_table(&test);
    table.put(item! { "id" => "job-1" }, None).await.expect("put");
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let count = Arc::clone(&attempts);
    host.on_table_change(
        "flaky",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |invocation, _| {
            let count = Arc::clone(&count);
            async move {
                assert_eq!(invocation.attempt as usize, count.fetch_add(1, Ordering::SeqCst) + 1);
                match invocation.attempt {
                    1 => panic!("first attempt panics"),
                    2 => std::future::pending::<Result<BatchResponse, FunctionError>>().await,
                    _ => Ok(BatchResponse::success()),
                }
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(test.platform.stream.dead_letters(Some("flaky")).expect("dlq").is_empty());
}

#[tokio::test]
async fn a_function_is_told_which_attempt_is_its_last_before_dead_lettering() {
    let mut test = TestPlatform::new();
    test.config.stream.max_attempts = 3;
    test.config.stream.max_record_age = Duration::from_secs(60);
    test.reopen();
    let table = jobs_table(&test);
    let seen = Recorder::<(String, u32, bool)>::default();
    let run = |test: &TestPlatform| {
        let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
        let record = seen.clone();
        host.on_table_change(
            "doomed",
            table.stream_source(),
            StreamTrigger::new(&test.config.stream),
            move |invocation, batch| {
                record.push((job_id(&batch[0]), invocation.attempt, invocation.last_attempt));
                async { Err::<BatchResponse, FunctionError>("always failing".into()) }
            },
        )
        .expect("register");
        host.start().expect("start");
        async move {
            host.drain().await.expect("drain");
            host.shutdown().await;
        }
    };
    table.put(item! { "id" => "fresh" }, None).await.expect("put");
    run(&test).await;
    // A record past its maximum age gets one attempt, and it is the last.
    table.put(item! { "id" => "stale" }, None).await.expect("put");
    test.clock.advance(Duration::from_secs(120));
    run(&test).await;

    let attempts = |id: &str| -> Vec<(u32, bool)> {
        seen.all().into_iter().filter(|(job, ..)| job == id).map(|(_, n, last)| (n, last)).collect()
    };
    assert_eq!(attempts("fresh"), [(1, false), (2, false), (3, true)]);
    assert_eq!(attempts("stale"), [(1, true)]);
    assert_eq!(test.platform.stream.dead_letters(Some("doomed")).expect("dlq").len(), 2);
}

#[tokio::test]
async fn invocations_respect_the_concurrency_limit() {
    let mut test = TestPlatform::new();
    test.config.functions.background_concurrency = 1;
    test.reopen();
    let table = jobs_table(&test);
    for i in 0..20 {
        table.put(item! { "id" => format!("job-{i}") }, None).await.expect("put");
    }
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    for name in ["first", "second", "third"] {
        let (running, most) = (Arc::clone(&running), Arc::clone(&most));
        let trigger = StreamTrigger::new(&test.config.stream).batch_size(2);
        host.on_table_change(name, table.stream_source(), trigger, move |_, _| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(BatchResponse::success())
            }
        })
        .expect("register");
    }
    let duplicate = host.on_table_change(
        "first",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        |_, _| async { Ok(BatchResponse::success()) },
    );
    assert!(duplicate.is_err(), "function names are unique");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(most.load(Ordering::SeqCst), 1);
}
