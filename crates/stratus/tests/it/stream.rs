use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use stratus::item;
use stratus::ports::events::{BatchResponse, ChangeKind, TableChange};
use stratus::ports::stream::{EventFilter, StreamError};
use stratus::ports::table::sqlite::SqliteTable;
use stratus::ports::table::{KeyAttribute, Table, TableSpec, UpdateAction};
use stratus::services::functions::{FunctionError, Host, StreamTrigger, sequence_number};

use crate::support::{Recorder, TestPlatform};

fn events_table(test: &TestPlatform) -> SqliteTable {
    test.platform.table(TableSpec::new("events", KeyAttribute::string("id"))).expect("table")
}

fn host(test: &TestPlatform) -> Host {
    Host::new(Arc::clone(&test.platform.stream), &test.config.functions)
}

fn id_of(change: &TableChange) -> String {
    change.dynamodb.keys["id"].as_s().expect("string id").to_owned()
}

/// Registers a function that records every change it is given and succeeds.
fn record_changes(
    host: &mut Host,
    name: &str,
    table: &SqliteTable,
    trigger: StreamTrigger,
) -> Recorder<TableChange> {
    let recorder = Recorder::default();
    let seen = recorder.clone();
    host.on_table_change(name, table.stream_source(), trigger, move |_, batch| {
        let seen = seen.clone();
        async move {
            batch.into_iter().for_each(|change| seen.push(change));
            Ok(BatchResponse::success())
        }
    })
    .expect("register");
    recorder
}

#[tokio::test]
async fn changes_to_each_item_arrive_in_order_with_concurrent_writers() {
    let test = TestPlatform::new();
    let table = Arc::new(events_table(&test));
    let mut host = host(&test);
    let changes =
        record_changes(&mut host, "ordered", &table, StreamTrigger::new(&test.config.stream).batch_size(7));
    host.start().expect("start");

    let (writers, items, rounds) = (4, 5, 25);
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let table = Arc::clone(&table);
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let key = item! { "id" => format!("item-{}", round % items) };
                table.update(&key, &[UpdateAction::add("count", 1)], None).await.expect("update");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    host.drain().await.expect("drain");
    host.shutdown().await;

    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for change in changes.all() {
        let image = change.dynamodb.new_image.as_ref().expect("new image");
        let count = image["count"].as_n().expect("count").as_str().parse().expect("integer");
        counts.entry(id_of(&change)).or_default().push(count);
    }
    assert_eq!(counts.len(), items);
    let per_item = (writers * rounds / items) as i64;
    for (id, seen) in counts {
        assert_eq!(seen, (1..=per_item).collect::<Vec<_>>(), "changes of {id} out of order or missing");
    }
}

#[tokio::test]
async fn records_in_flight_at_a_crash_are_delivered_again_after_restart() {
    let mut test = TestPlatform::new();
    let table = events_table(&test);
    for i in 0..10 {
        table.put(item! { "id" => format!("e{i}") }, None).await.expect("put");
    }
    // The first host crashes while its function is handling the first batch.
    let started = Arc::new(tokio::sync::Notify::new());
    let mut crashing = host(&test);
    let signal = Arc::clone(&started);
    crashing
        .on_table_change(
            "at-least-once",
            table.stream_source(),
            StreamTrigger::new(&test.config.stream).batch_size(4),
            move |_, _| {
                let signal = Arc::clone(&signal);
                async move {
                    signal.notify_one();
                    std::future::pending::<Result<BatchResponse, FunctionError>>().await
                }
            },
        )
        .expect("register");
    crashing.start().expect("start");
    started.notified().await;
    crashing.abort().await;
    drop(table);

    test.reopen();
    let table = events_table(&test);
    let mut restarted = host(&test);
    let changes =
        record_changes(&mut restarted, "at-least-once", &table, StreamTrigger::new(&test.config.stream));
    restarted.start().expect("start");
    restarted.drain().await.expect("drain");
    restarted.shutdown().await;
    let ids: Vec<String> = changes.all().iter().map(id_of).collect();
    assert_eq!(ids, (0..10).map(|i| format!("e{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_poison_record_is_isolated_and_dead_lettered_while_the_rest_is_processed() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    for i in 0..20 {
        let poison = i == 13;
        table.put(item! { "id" => format!("e{i:02}"), "poison" => poison }, None).await.expect("put");
    }
    let processed = Recorder::<String>::default();
    let invocations = Arc::new(AtomicUsize::new(0));
    let mut host = host(&test);
    let (seen, calls) = (processed.clone(), Arc::clone(&invocations));
    host.on_table_change(
        "poison",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream).batch_size(20),
        move |_, batch| {
            let (seen, calls) = (seen.clone(), Arc::clone(&calls));
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let poisoned = batch
                    .iter()
                    .any(|change| change.image().is_some_and(|image| image["poison"] == true.into()));
                if poisoned {
                    return Err("cannot digest this batch".into());
                }
                batch.iter().for_each(|change| seen.push(id_of(change)));
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;

    let mut ids = processed.all();
    ids.sort();
    ids.dedup();
    let expected: Vec<String> = (0..20).filter(|i| *i != 13).map(|i| format!("e{i:02}")).collect();
    assert_eq!(ids, expected, "every healthy record is processed");
    let letters = test.platform.stream.dead_letters(Some("poison")).expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].record.body["dynamodb"]["Keys"]["id"]["S"], "e13");
    assert_eq!(letters[0].attempts, test.config.stream.max_attempts);
    assert!(letters[0].error.contains("cannot digest"), "error kept: {}", letters[0].error);
    // Bisection reaches the poison in about log2(20) splits, then retries it alone.
    assert!(invocations.load(Ordering::SeqCst) <= 20, "{} invocations", invocations.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_partial_batch_response_retries_only_from_the_failed_record() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    for i in 0..6 {
        table.put(item! { "id" => format!("e{i}") }, None).await.expect("put");
    }
    let deliveries = Recorder::<String>::default();
    let failed_once = Arc::new(AtomicBool::new(false));
    let mut host = host(&test);
    let (seen, failed) = (deliveries.clone(), Arc::clone(&failed_once));
    host.on_table_change(
        "partial",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, batch| {
            let (seen, failed) = (seen.clone(), Arc::clone(&failed));
            async move {
                for change in &batch {
                    if id_of(change) == "e3" && !failed.swap(true, Ordering::SeqCst) {
                        return Ok(BatchResponse::failed_from(change.dynamodb.sequence_number.clone()));
                    }
                    seen.push(id_of(change));
                }
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(deliveries.all(), ["e0", "e1", "e2", "e3", "e4", "e5"], "nothing before e3 is redelivered");
    assert!(test.platform.stream.dead_letters(Some("partial")).expect("dlq").is_empty());
}

#[tokio::test]
async fn filters_deliver_only_matching_records() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    let mut host = host(&test);
    let filter = EventFilter::parse(
        r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["subscriber"]}}}}"#,
    )
    .expect("filter");
    let subscribers =
        record_changes(&mut host, "welcome", &table, StreamTrigger::new(&test.config.stream).filter(filter));
    let everything = record_changes(&mut host, "audit", &table, StreamTrigger::new(&test.config.stream));
    host.start().expect("start");
    table.put(item! { "id" => "s1", "type" => "subscriber" }, None).await.expect("put");
    table.put(item! { "id" => "p1", "type" => "post" }, None).await.expect("put");
    table.put(item! { "id" => "s1", "type" => "subscriber", "name" => "Ada" }, None).await.expect("modify");
    table.put(item! { "id" => "s2", "type" => "subscriber" }, None).await.expect("put");
    table.delete(&item! { "id" => "s2" }, None).await.expect("delete");
    host.drain().await.expect("drain");
    host.shutdown().await;
    let welcomed: Vec<(ChangeKind, String)> =
        subscribers.all().iter().map(|c| (c.event_name, id_of(c))).collect();
    assert_eq!(welcomed, [(ChangeKind::Insert, "s1".to_owned()), (ChangeKind::Insert, "s2".to_owned())]);
    assert_eq!(everything.all().len(), 5);
}

#[tokio::test]
async fn dead_letters_can_be_redriven_to_their_consumer() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    table.put(item! { "id" => "bad" }, None).await.expect("put");
    let healed = Arc::new(AtomicBool::new(false));
    let processed = Recorder::<String>::default();
    let mut host = host(&test);
    let (ok, seen) = (Arc::clone(&healed), processed.clone());
    host.on_table_change(
        "fragile",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, batch| {
            let (ok, seen) = (Arc::clone(&ok), seen.clone());
            async move {
                if !ok.load(Ordering::SeqCst) {
                    return Err("downstream unavailable".into());
                }
                batch.iter().for_each(|change| seen.push(id_of(change)));
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    let other = record_changes(&mut host, "bystander", &table, StreamTrigger::new(&test.config.stream));
    host.start().expect("start");
    host.drain().await.expect("drain");
    assert_eq!(test.platform.stream.dead_letters(Some("fragile")).expect("dlq").len(), 1);

    healed.store(true, Ordering::SeqCst);
    assert_eq!(test.platform.stream.redrive("fragile", None).expect("redrive"), 1);
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(processed.all(), ["bad"]);
    assert!(test.platform.stream.dead_letters(Some("fragile")).expect("dlq").is_empty());
    assert_eq!(other.all().len(), 1, "a redrive reaches only the consumer it is for");

    let unknown = test.platform.stream.redrive("nobody", None);
    assert!(matches!(unknown, Err(StreamError::UnknownConsumer { .. })), "got {unknown:?}");
    let unknown = test.platform.stream.dead_letters(Some("nobody"));
    assert!(matches!(unknown, Err(StreamError::UnknownConsumer { .. })), "got {unknown:?}");
}

#[tokio::test]
async fn a_consumer_behind_the_retention_is_reported_not_skipped_silently() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    let stream = &test.platform.stream;
    let source = table.stream_source().to_owned();
    stream
        .register_consumer("slow", &source, stratus::ports::stream::StartingPosition::TrimHorizon)
        .expect("register");
    for i in 0..3 {
        table.put(item! { "id" => format!("old{i}") }, None).await.expect("put");
    }
    test.clock.advance(Duration::from_secs(25 * 3600));
    table.put(item! { "id" => "new" }, None).await.expect("put");

    let report = stream.trim(test.config.stream.retention, &["slow".to_owned()]).await.expect("trim");
    assert_eq!(report.trimmed, 3);
    assert_eq!(report.lagging, [("slow".to_owned(), 3)]);
    let status = stream.consumers().expect("status");
    assert_eq!((status[0].name.as_str(), status[0].lost, status[0].pending), ("slow", 3, 1));
    let remaining = stream.read_after("slow", &source, 0, 10).expect("read");
    assert_eq!(remaining.len(), 1, "only the record inside the retention window remains");
}

#[tokio::test]
async fn sequence_numbers_are_delivered_as_dynamodb_spells_them() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    let mut host = host(&test);
    let changes = record_changes(&mut host, "sequence", &table, StreamTrigger::new(&test.config.stream));
    host.start().expect("start");
    table.put(item! { "id" => "a" }, None).await.expect("put");
    table.put(item! { "id" => "a" }, None).await.expect("a write that changes nothing");
    table.put(item! { "id" => "a", "v" => 1 }, None).await.expect("put");
    host.drain().await.expect("drain");
    host.shutdown().await;
    let changes = changes.all();
    assert_eq!(changes.len(), 2, "an unchanged item produces no record");
    let numbers: Vec<&str> = changes.iter().map(|c| c.dynamodb.sequence_number.as_str()).collect();
    assert!(numbers.iter().all(|n| n.len() == 21 && n.bytes().all(|b| b.is_ascii_digit())), "{numbers:?}");
    assert!(numbers[0] < numbers[1]);
    assert_eq!(sequence_number(7), "000000000000000000007");
    assert_eq!(changes[1].dynamodb.old_image, Some(item! { "id" => "a" }));
    assert_eq!(changes[1].event_name, ChangeKind::Modify);
}

#[tokio::test]
async fn a_batching_window_gathers_records_until_the_batch_is_full_or_the_window_ends() {
    let test = TestPlatform::new();
    let table = events_table(&test);
    let mut trigger = StreamTrigger::new(&test.config.stream).batch_size(4);
    trigger.options.batching_window = Duration::from_secs(60);
    let batches = Recorder::<Vec<String>>::default();
    let mut host = host(&test);
    let seen = batches.clone();
    host.on_table_change("windowed", table.stream_source(), trigger, move |_, batch| {
        let seen = seen.clone();
        async move {
            seen.push(batch.iter().map(id_of).collect());
            Ok(BatchResponse::success())
        }
    })
    .expect("register");
    host.start().expect("start");
    for i in 0..6 {
        table.put(item! { "id" => format!("e{i}") }, None).await.expect("put");
    }
    // Two records wait for the window; once it has passed, the next commit wakes the consumer.
    test.clock.advance(Duration::from_secs(61));
    let other = test.platform.table(TableSpec::new("other", KeyAttribute::string("id"))).expect("table");
    other.put(item! { "id" => "wake" }, None).await.expect("put");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(batches.all(), [vec!["e0", "e1", "e2", "e3"], vec!["e4", "e5"]]);
}

#[tokio::test]
async fn a_failing_record_older_than_the_maximum_age_is_dead_lettered_at_once() {
    let mut test = TestPlatform::new();
    test.config.stream.max_attempts = 100;
    test.config.stream.max_record_age = Duration::from_secs(60);
    test.reopen();
    let table = events_table(&test);
    table.put(item! { "id" => "stale" }, None).await.expect("put");
    test.clock.advance(Duration::from_secs(120));
    let mut host = host(&test);
    host.on_table_change(
        "ageing",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        |_, _| async { Err::<BatchResponse, FunctionError>("still failing".into()) },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    let letters = test.platform.stream.dead_letters(Some("ageing")).expect("dlq");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1, "no retries for a record past its maximum age");
}
