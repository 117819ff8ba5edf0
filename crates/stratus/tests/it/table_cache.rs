//! The read cache in front of a table (`ports::table::cached`): it behaves as a table (the
//! conformance suite), answers repeated reads from memory, and never returns what a finished
//! write replaced — in this process at once, from other writers once their change-stream record
//! has been read.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stratus::infra::clock::{Clock, SystemClock};
use stratus::item;
use stratus::ports::events::BatchResponse;
use stratus::ports::table::cached::{CacheSettings, CacheStats, CachedTable};
use stratus::ports::table::conformance::{self, TableFactory};
use stratus::ports::table::sqlite::SqliteTable;
use stratus::ports::table::{
    Condition, Item, Page, Query, SetValue, Table, TableError, TableSpec, TransactOp, UpdateAction,
};
use stratus::services::functions::{Host, StreamTrigger};
use tokio::sync::Notify;

use crate::support::TestPlatform;
use crate::table::SqliteFactory;

const SETTINGS: CacheSettings =
    CacheSettings { ttl: Duration::from_secs(300), item_bytes: 1 << 20, query_bytes: 1 << 20 };

/// The SQLite adapter's factory, each table behind the cache.
struct CachedFactory(SqliteFactory);

impl CachedFactory {
    fn new() -> Self {
        Self(SqliteFactory::new())
    }
}

#[async_trait]
impl TableFactory for CachedFactory {
    async fn open(&self, spec: TableSpec) -> Arc<dyn Table> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Arc::new(CachedTable::new(self.0.open(spec).await, clock, SETTINGS))
    }
}

/// Every case of the suite reads what it just wrote, so each also checks that writes through
/// the cache update it.
mod conformance_through_the_cache {
    use super::CachedFactory;

    stratus::table_conformance_tests!(CachedFactory::new());
}

fn key(pk: &str, sk: &str) -> Item {
    item! { "pk" => pk, "sk" => sk }
}

fn open(test: &TestPlatform, name: &str) -> (SqliteTable, Arc<CachedTable>) {
    let table = test.platform.table(conformance::spec(name)).expect("table");
    let clock: Arc<dyn Clock> = Arc::new(test.clock.clone());
    let cached = Arc::new(CachedTable::new(Arc::new(table.clone()), clock, SETTINGS));
    (table, cached)
}

fn by_status(status: &str) -> Query {
    Query::partition(status).index("by_status")
}

fn sks(page: &Page) -> Vec<String> {
    page.items.iter().map(|item| item["sk"].as_s().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn repeated_reads_are_answered_from_memory_and_misses_are_cached_too() {
    let test = TestPlatform::new();
    let (_, cached) = open(&test, "reads");
    cached
        .put(item! { "pk" => "a", "sk" => "1", "status" => "open", "created" => 1 }, None)
        .await
        .expect("put");

    for _ in 0..3 {
        assert!(cached.get(&key("a", "1")).await.expect("get").is_some());
        assert_eq!(cached.get(&key("a", "missing")).await.expect("get"), None);
        assert_eq!(sks(&cached.query(by_status("open")).await.expect("query")), ["1"]);
        assert!(cached.query(by_status("closed")).await.expect("query").items.is_empty());
    }
    // The put wrote its item through, so even the first get was a hit.
    assert_eq!(cached.stats(), CacheStats { item_hits: 5, item_misses: 1, query_hits: 4, query_misses: 2 });
}

#[tokio::test]
async fn a_write_through_the_cache_is_read_back_at_once_in_every_partition_it_left_or_entered() {
    let test = TestPlatform::new();
    let (_, cached) = open(&test, "moves");
    cached
        .put(item! { "pk" => "a", "sk" => "1", "status" => "open", "created" => 1 }, None)
        .await
        .expect("put");
    assert_eq!(sks(&cached.query(by_status("open")).await.expect("query")), ["1"]);
    assert!(cached.query(by_status("done")).await.expect("query").items.is_empty());
    assert_eq!(sks(&cached.query(Query::partition("a")).await.expect("query")), ["1"]);

    // An update of an index attribute moves the item between index partitions.
    let actions = [UpdateAction::Set("status".into(), SetValue::Value("done".into()))];
    cached.update(&key("a", "1"), &actions, None).await.expect("update");
    assert!(cached.query(by_status("open")).await.expect("query").items.is_empty(), "left `open`");
    assert_eq!(sks(&cached.query(by_status("done")).await.expect("query")), ["1"], "entered `done`");
    assert_eq!(cached.get(&key("a", "1")).await.expect("get").expect("item")["status"], "done".into());

    // A transaction says neither what it replaced nor what an update wrote.
    cached
        .transact_write(vec![
            TransactOp::Update {
                key: key("a", "1"),
                actions: vec![UpdateAction::Set("status".into(), SetValue::Value("open".into()))],
                condition: Some(Condition::eq("status", "done")),
            },
            TransactOp::Put {
                item: item! { "pk" => "a", "sk" => "2", "status" => "done", "created" => 2 },
                condition: None,
            },
        ])
        .await
        .expect("transaction");
    assert_eq!(sks(&cached.query(by_status("open")).await.expect("query")), ["1"]);
    assert_eq!(sks(&cached.query(by_status("done")).await.expect("query")), ["2"]);
    assert_eq!(sks(&cached.query(Query::partition("a")).await.expect("query")), ["1", "2"]);

    cached.delete(&key("a", "2"), None).await.expect("delete");
    assert!(cached.query(by_status("done")).await.expect("query").items.is_empty());
    assert_eq!(cached.get(&key("a", "2")).await.expect("get"), None);
}

#[tokio::test]
async fn another_writers_change_is_seen_once_the_stream_has_reached_the_cache() {
    let test = TestPlatform::new();
    let (table, cached) = open(&test, "others");
    table
        .put(item! { "pk" => "a", "sk" => "1", "status" => "open", "created" => 1 }, None)
        .await
        .expect("put");
    assert_eq!(cached.get(&key("a", "1")).await.expect("get").expect("item")["status"], "open".into());
    assert_eq!(sks(&cached.query(by_status("open")).await.expect("query")), ["1"]);

    // Another process (the CLI, say) writes to the table itself.
    table
        .put(item! { "pk" => "a", "sk" => "1", "status" => "done", "created" => 1 }, None)
        .await
        .expect("put");
    let stale = cached.get(&key("a", "1")).await.expect("get").expect("item");
    assert_eq!(stale["status"], "open".into(), "eventually consistent, as DAX is");
    let consistent = cached.get_consistent(&key("a", "1")).await.expect("get").expect("item");
    assert_eq!(consistent["status"], "done".into(), "a consistent read passes the cache by");
    assert_eq!(
        sks(&cached.query(by_status("open").consistent()).await.expect("query")),
        Vec::<String>::new()
    );

    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let invalidated = Arc::clone(&cached);
    host.on_table_change(
        "others-cache-invalidate",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, changes| {
            changes.iter().for_each(|change| invalidated.invalidate(change));
            async { Ok(BatchResponse::success()) }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    assert_eq!(cached.get(&key("a", "1")).await.expect("get").expect("item")["status"], "done".into());
    assert!(cached.query(by_status("open")).await.expect("query").items.is_empty());
    assert_eq!(sks(&cached.query(by_status("done")).await.expect("query")), ["1"]);
}

#[tokio::test]
async fn entries_expire_with_their_ttl_and_with_the_items_ttl() {
    let test = TestPlatform::new();
    let (table, cached) = open(&test, "expiry");
    let now = test.clock.now_millis() / 1000;
    cached.put(item! { "pk" => "a", "sk" => "1", "expires" => now + 10 }, None).await.expect("put");
    assert!(cached.get(&key("a", "1")).await.expect("get").is_some());
    test.clock.advance(Duration::from_secs(20));
    assert_eq!(cached.get(&key("a", "1")).await.expect("get"), None, "the item's own TTL passed");
    assert!(cached.query(Query::partition("a")).await.expect("query").items.is_empty());

    // A write the cache never heard of shows once the entry's own lifetime is over.
    table.put(item! { "pk" => "b", "sk" => "1", "v" => 1 }, None).await.expect("put");
    assert!(cached.get(&key("b", "1")).await.expect("get").is_some());
    assert!(cached.query(Query::partition("b")).await.expect("query").items.len() == 1);
    table.put(item! { "pk" => "b", "sk" => "2", "v" => 2 }, None).await.expect("put");
    table.delete(&key("b", "1"), None).await.expect("delete");
    assert!(cached.get(&key("b", "1")).await.expect("get").is_some(), "not heard of yet");
    test.clock.advance(SETTINGS.ttl - Duration::from_secs(1));
    assert!(cached.get(&key("b", "1")).await.expect("get").is_some(), "within the TTL");
    test.clock.advance(Duration::from_secs(1));
    assert_eq!(cached.get(&key("b", "1")).await.expect("get"), None);
    assert_eq!(sks(&cached.query(Query::partition("b")).await.expect("query")), ["2"]);
}

/// A table whose `get` and `query` wait for a signal after reading: a read that is overtaken
/// by a write, on demand.
#[derive(Debug)]
struct Overtaken {
    inner: SqliteTable,
    reading: Notify,
    resume: Notify,
}

#[async_trait]
impl Table for Overtaken {
    fn spec(&self) -> &TableSpec {
        self.inner.spec()
    }
    async fn get(&self, key: &Item) -> Result<Option<Item>, TableError> {
        let item = self.inner.get(key).await;
        self.reading.notify_one();
        self.resume.notified().await;
        item
    }
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.inner.put(item, condition).await
    }
    async fn update(&self, key: &Item, a: &[UpdateAction], c: Option<Condition>) -> Result<Item, TableError> {
        self.inner.update(key, a, c).await
    }
    async fn delete(&self, key: &Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let page = self.inner.query(query).await;
        self.reading.notify_one();
        self.resume.notified().await;
        page
    }
    async fn transact_write(&self, operations: Vec<TransactOp>) -> Result<(), TableError> {
        self.inner.transact_write(operations).await
    }
}

#[tokio::test]
async fn a_read_overtaken_by_a_write_does_not_put_what_it_read_in_the_cache() {
    let test = TestPlatform::new();
    let table = test.platform.table(conformance::spec("overtaken")).expect("table");
    let slow = Arc::new(Overtaken { inner: table.clone(), reading: Notify::new(), resume: Notify::new() });
    let clock: Arc<dyn Clock> = Arc::new(test.clock.clone());
    let cached = Arc::new(CachedTable::new(Arc::clone(&slow) as Arc<dyn Table>, clock, SETTINGS));
    table
        .put(item! { "pk" => "a", "sk" => "1", "status" => "open", "created" => 1 }, None)
        .await
        .expect("put");

    // A get misses and reads version 1; before it returns, a write makes it version 2.
    let reader = tokio::spawn({
        let cached = Arc::clone(&cached);
        async move { cached.get(&key("a", "1")).await }
    });
    slow.reading.notified().await;
    cached
        .put(item! { "pk" => "a", "sk" => "1", "status" => "done", "created" => 1 }, None)
        .await
        .expect("put");
    slow.resume.notify_one();
    let old = reader.await.expect("reader").expect("get").expect("item");
    assert_eq!(old["status"], "open".into(), "the read began before the write");
    assert_eq!(cached.get(&key("a", "1")).await.expect("get").expect("item")["status"], "done".into());

    // The same for a query.
    let reader = tokio::spawn({
        let cached = Arc::clone(&cached);
        async move { cached.query(by_status("done")).await }
    });
    slow.reading.notified().await;
    cached.delete(&key("a", "1"), None).await.expect("delete");
    slow.resume.notify_one();
    assert_eq!(sks(&reader.await.expect("reader").expect("query")), ["1"]);
    let reread = tokio::spawn({
        let cached = Arc::clone(&cached);
        async move { cached.query(by_status("done")).await }
    });
    slow.reading.notified().await;
    slow.resume.notify_one();
    assert!(reread.await.expect("reader").expect("query").items.is_empty(), "the stale page was not cached");
}
