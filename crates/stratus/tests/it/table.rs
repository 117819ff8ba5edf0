use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stratus::infra::clock::{Clock, SystemClock};
use stratus::infra::sqlite::Database;
use stratus::item;
use stratus::ports::events::{BatchResponse, ChangeKind, TableChange};
use stratus::ports::table::conformance::TableFactory;
use stratus::ports::table::sqlite::SqliteTable;
use stratus::ports::table::{IndexSpec, KeyAttribute, Query, Table, TableError, TableSpec};
use stratus::services::functions::{Host, StreamTrigger};
use tempfile::TempDir;

use crate::support::{Recorder, TestPlatform};

pub struct SqliteFactory {
    _dir: TempDir,
    db: Arc<Database>,
}

impl SqliteFactory {
    pub fn new() -> Self {
        let dir = TempDir::new().expect("temporary directory");
        let db = Database::open(&dir.path().join("stratus.db"), stratus::infra::sqlite::Synchronous::Normal)
            .expect("db");
        Self { _dir: dir, db: Arc::new(db) }
    }
}

#[async_trait]
impl TableFactory for SqliteFactory {
    async fn open(&self, spec: TableSpec) -> Arc<dyn Table> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Arc::new(SqliteTable::open(Arc::clone(&self.db), spec, clock, "us-east-1").expect("open table"))
    }
}

mod conformance {
    use super::SqliteFactory;

    stratus::table_conformance_tests!(SqliteFactory::new());
}

#[tokio::test]
async fn expired_items_are_deleted_in_the_background_with_a_ttl_stream_record() {
    let test = TestPlatform::new();
    let table = test.platform.table(stratus::ports::table::conformance::spec("sessions")).expect("table");
    let now = test.clock.now_millis() / 1000;
    table.put(item! { "pk" => "s", "sk" => "1", "expires" => now + 10 }, None).await.expect("put");
    table.put(item! { "pk" => "s", "sk" => "2", "expires" => now + 3600 }, None).await.expect("put");
    assert!(table.get(&item! { "pk" => "s", "sk" => "1" }).await.expect("get").is_some());

    test.clock.advance(Duration::from_secs(20));
    assert_eq!(table.get(&item! { "pk" => "s", "sk" => "1" }).await.expect("get"), None);
    assert_eq!(test.platform.sweep_expired().await, 1);
    assert_eq!(test.platform.sweep_expired().await, 0, "the sweep is idempotent");

    let changes = Recorder::<TableChange>::default();
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let seen = changes.clone();
    host.on_table_change(
        "ttl-watch",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        move |_, batch| {
            let seen = seen.clone();
            async move {
                batch.into_iter().for_each(|change| seen.push(change));
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;
    let changes = changes.all();
    let kinds: Vec<(ChangeKind, bool)> =
        changes.iter().map(|c| (c.event_name, c.is_ttl_deletion())).collect();
    assert_eq!(kinds, [(ChangeKind::Insert, false), (ChangeKind::Insert, false), (ChangeKind::Remove, true)]);
    assert_eq!(changes[2].dynamodb.keys, item! { "pk" => "s", "sk" => "1" });
}

#[tokio::test]
async fn reopening_a_table_with_another_key_schema_is_refused() {
    let test = TestPlatform::new();
    test.platform.table(TableSpec::new("things", KeyAttribute::string("id"))).expect("create");
    let changed = test.platform.table(TableSpec::new("things", KeyAttribute::number("id")));
    assert!(matches!(changed, Err(TableError::SchemaMismatch { .. })), "got {changed:?}");
    let invalid = test.platform.table(TableSpec::new("x", KeyAttribute::string("id")));
    assert!(matches!(invalid, Err(TableError::InvalidSpec { .. })), "got {invalid:?}");
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let mut test = TestPlatform::new();
    let spec = stratus::ports::table::conformance::spec("durable");
    let table = test.platform.table(spec.clone()).expect("table");
    table.put(item! { "pk" => "a", "sk" => "1", "v" => 1 }, None).await.expect("put");
    drop(table);
    test.reopen();
    let table = test.platform.table(spec).expect("table");
    let item = table.get(&item! { "pk" => "a", "sk" => "1" }).await.expect("get");
    assert_eq!(item, Some(item! { "pk" => "a", "sk" => "1", "v" => 1 }));
}

#[tokio::test]
async fn a_database_from_before_projections_gets_projected_indexes_on_open() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("stratus.db");
    let db = Arc::new(Database::open(&path, stratus::infra::sqlite::Synchronous::Normal).expect("db"));
    // The schema an earlier version made: index entries without a projected item.
    db.migrate(
        "CREATE TABLE table_specs (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
         CREATE TABLE items (tbl TEXT NOT NULL, pk BLOB NOT NULL, sk BLOB NOT NULL, item TEXT NOT NULL,
             expires_at INTEGER, PRIMARY KEY (tbl, pk, sk)) WITHOUT ROWID;
         CREATE TABLE index_entries (tbl TEXT NOT NULL, idx TEXT NOT NULL, ipk BLOB NOT NULL, isk BLOB NOT NULL,
             pk BLOB NOT NULL, sk BLOB NOT NULL, PRIMARY KEY (tbl, idx, ipk, isk, pk, sk)) WITHOUT ROWID;",
    )
    .expect("old schema");
    let whole = TableSpec::new("notes", KeyAttribute::string("pk"))
        .sort_key(KeyAttribute::string("sk"))
        .index(IndexSpec::new("titles", KeyAttribute::string("owner")));
    let old_spec = serde_json::to_value(&whole).expect("spec");
    let mut old_spec = old_spec.as_object().expect("object").clone();
    for index in old_spec["indexes"].as_array_mut().expect("indexes") {
        index.as_object_mut().expect("index").remove("projection");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    {
        let old =
            SqliteTable::open(Arc::clone(&db), whole.clone(), Arc::clone(&clock), "us-east-1").expect("open");
        old.put(
            item! { "pk" => "u1", "sk" => "n1", "owner" => "ada", "title" => "first", "body" => "long" },
            None,
        )
        .await
        .expect("put");
    }
    // As an earlier version stored the spec: its indexes named no projection.
    let old_spec = serde_json::Value::Object(old_spec).to_string();
    db.write_blocking(|transaction| {
        transaction.execute("UPDATE table_specs SET spec = ?1 WHERE name = 'notes'", [&old_spec])?;
        Ok::<_, stratus::infra::sqlite::DbError>(())
    })
    .expect("old spec");
    let projected = TableSpec {
        indexes: vec![IndexSpec::new("titles", KeyAttribute::string("owner")).include(&["title"])],
        ..whole
    };
    let table =
        SqliteTable::open(Arc::clone(&db), projected, clock, "us-east-1").expect("reopen with a projection");
    let items = table.query(Query::partition("ada").index("titles")).await.expect("query").items;
    assert_eq!(items, [item! { "pk" => "u1", "sk" => "n1", "owner" => "ada", "title" => "first" }]);
}
