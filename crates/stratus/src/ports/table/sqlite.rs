//! The embedded table adapter: items in SQLite, keyed by order-preserving encodings of their
//! key values; index entries and stream records written in the same transaction as the item.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use super::change::{ChangeData, ChangeKind, TableChange, UserIdentity};
use super::keys::{encode, prefix_successor};
use super::{
    CancellationReason, Condition, Cursor, Item, MAX_PAGE_BYTES, Page, Query, SortCondition, Table,
    TableError, TableSpec, TransactOp, UpdateAction, expr, item_size,
};
use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS table_specs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    item TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (tbl, pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_expiry ON items (tbl, expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS index_entries (
    tbl TEXT NOT NULL,
    idx TEXT NOT NULL,
    ipk BLOB NOT NULL,
    isk BLOB NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    item TEXT,
    expires_at INTEGER,
    PRIMARY KEY (tbl, idx, ipk, isk, pk, sk)
) WITHOUT ROWID;
";

/// Index entries of databases made before indexes had projections gain the projected item
/// (`NULL`: the index holds whole items, read from `items`) and its expiry.
const PROJECTION_COLUMNS: &str = "
ALTER TABLE index_entries ADD COLUMN item TEXT;
ALTER TABLE index_entries ADD COLUMN expires_at INTEGER;
";

/// A table stored in the stage's SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteTable {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    spec: TableSpec,
    clock: Arc<dyn Clock>,
    region: String,
    stream_source: String,
}

/// An item's primary key, encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RowKey {
    pk: Vec<u8>,
    sk: Vec<u8>,
}

impl SqliteTable {
    /// Opens the table, creating it on first use. Fails when the table exists with a different
    /// key schema; other changes to the spec (indexes, TTL) are applied.
    pub fn open(
        db: Arc<Database>,
        spec: TableSpec,
        clock: Arc<dyn Clock>,
        region: &str,
    ) -> Result<Self, TableError> {
        spec.validate()?;
        db.migrate(SCHEMA)?;
        crate::ports::stream::migrate(&db)?;
        let spec_json = serde_json::to_string(&spec).map_err(TableError::Corrupt)?;
        db.write_blocking(|transaction| {
            let projected: i64 = transaction.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('index_entries') WHERE name = 'item'",
                [],
                |row| row.get(0),
            )?;
            if projected == 0 {
                transaction.execute_batch(PROJECTION_COLUMNS)?;
            }
            let stored: Option<String> = transaction
                .query_row("SELECT spec FROM table_specs WHERE name = ?1", [&spec.name], |row| row.get(0))
                .optional()?;
            if let Some(stored) = stored {
                let stored: TableSpec = serde_json::from_str(&stored).map_err(TableError::Corrupt)?;
                if stored.partition_key != spec.partition_key || stored.sort_key != spec.sort_key {
                    return Err(TableError::SchemaMismatch { table: spec.name.clone() });
                }
                if stored.indexes != spec.indexes {
                    rebuild_indexes(transaction, &spec)?;
                }
            }
            transaction.execute(
                "INSERT INTO table_specs (name, spec) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                params![spec.name, spec_json],
            )?;
            Ok::<_, TableError>(())
        })?;
        let stream_source = stream_source(&spec.name);
        Ok(Self { inner: Arc::new(Inner { db, spec, clock, region: region.to_owned(), stream_source }) })
    }

    /// The name consumers use to subscribe to this table's changes.
    pub fn stream_source(&self) -> &str {
        &self.inner.stream_source
    }

    /// Deletes up to `limit` expired items, each with a REMOVE stream record marked as a TTL
    /// deletion; returns how many. The host calls this periodically.
    pub async fn sweep_expired(&self, limit: usize) -> Result<usize, TableError> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .db
            .write(move |transaction| {
                let now = inner.now_seconds();
                let expired: Vec<(Vec<u8>, Vec<u8>, String)> = transaction
                    .prepare_cached(
                        "SELECT pk, sk, item FROM items
                         WHERE tbl = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2 LIMIT ?3",
                    )?
                    .query_map(params![inner.spec.name, now, limit as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                for (pk, sk, item) in &expired {
                    let item: Item = serde_json::from_str(item).map_err(TableError::Corrupt)?;
                    let row_key = RowKey { pk: pk.clone(), sk: sk.clone() };
                    inner.remove(transaction, &row_key, &item, true)?;
                }
                Ok(expired.len())
            })
            .await
    }
}

/// The stream source of a table.
pub fn stream_source(table: &str) -> String {
    format!("table/{table}")
}

fn rebuild_indexes(transaction: &Transaction<'_>, spec: &TableSpec) -> Result<(), TableError> {
    transaction.execute("DELETE FROM index_entries WHERE tbl = ?1", [&spec.name])?;
    let rows: Vec<(Vec<u8>, Vec<u8>, String)> = transaction
        .prepare("SELECT pk, sk, item FROM items WHERE tbl = ?1")?
        .query_map([&spec.name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (pk, sk, item) in rows {
        let item: Item = serde_json::from_str(&item).map_err(TableError::Corrupt)?;
        write_index_entries(transaction, spec, &RowKey { pk, sk }, None, Some(&item))?;
    }
    Ok(())
}

fn write_index_entries(
    transaction: &Transaction<'_>,
    spec: &TableSpec,
    row_key: &RowKey,
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<(), TableError> {
    for index in &spec.indexes {
        // What the index holds of an item: its key there and, for a projecting index, the
        // projected attributes and the expiry its queries check without reading `items` (an
        // index of whole items reads both from there).
        let entry = |item: &Item| {
            let (partition, sort) = spec.index_key(index, item)?;
            let key = (encode(partition), sort.map(encode).unwrap_or_default());
            let projected = spec.projected(index, item);
            let expires_at = projected.as_ref().and_then(|_| spec.expiry_of(item));
            Some((key, projected, expires_at))
        };
        let (old_entry, new_entry) = (old.and_then(entry), new.and_then(entry));
        if old_entry == new_entry {
            continue;
        }
        if let Some(((partition, sort), ..)) = &old_entry
            && new_entry
                .as_ref()
                .is_none_or(|((new_partition, new_sort), ..)| (new_partition, new_sort) != (partition, sort))
        {
            transaction
                .prepare_cached(
                    "DELETE FROM index_entries
                     WHERE tbl = ?1 AND idx = ?2 AND ipk = ?3 AND isk = ?4 AND pk = ?5 AND sk = ?6",
                )?
                .execute(params![spec.name, index.name, partition, sort, row_key.pk, row_key.sk])?;
        }
        if let Some(((partition, sort), projected, expires_at)) = new_entry {
            let projected = projected
                .map(|item| serde_json::to_string(&item))
                .transpose()
                .map_err(TableError::Corrupt)?;
            transaction
                .prepare_cached(
                    "INSERT INTO index_entries (tbl, idx, ipk, isk, pk, sk, item, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (tbl, idx, ipk, isk, pk, sk)
                     DO UPDATE SET item = excluded.item, expires_at = excluded.expires_at",
                )?
                .execute(params![
                    spec.name, index.name, partition, sort, row_key.pk, row_key.sk, projected, expires_at
                ])?;
        }
    }
    Ok(())
}

impl Inner {
    fn now_seconds(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    fn row_key(&self, key: &Item) -> RowKey {
        let pk = key.get(&self.spec.partition_key.name).map(encode).unwrap_or_default();
        let sk =
            self.spec.sort_key.as_ref().and_then(|sort| key.get(&sort.name)).map(encode).unwrap_or_default();
        RowKey { pk, sk }
    }

    /// The item stored under `row_key`; an expired one is deleted (with its TTL stream record)
    /// and reported as absent, so conditions never see expired items.
    fn load_live(&self, transaction: &Transaction<'_>, row_key: &RowKey) -> Result<Option<Item>, TableError> {
        let row: Option<(String, Option<i64>)> = transaction
            .prepare_cached("SELECT item, expires_at FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")?
            .query_row(params![self.spec.name, row_key.pk, row_key.sk], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((json, expires_at)) = row else { return Ok(None) };
        let item: Item = serde_json::from_str(&json).map_err(TableError::Corrupt)?;
        if expires_at.is_some_and(|at| at <= self.now_seconds()) {
            self.remove(transaction, row_key, &item, true)?;
            return Ok(None);
        }
        Ok(Some(item))
    }

    /// Writes `new` over `old` (which the caller loaded), keeping indexes and the stream in step.
    fn store(
        &self,
        transaction: &Transaction<'_>,
        row_key: &RowKey,
        old: Option<&Item>,
        new: &Item,
    ) -> Result<(), TableError> {
        if old == Some(new) {
            // DynamoDB writes no stream record for a write that changes nothing.
            return Ok(());
        }
        let json = serde_json::to_string(new).map_err(TableError::Corrupt)?;
        transaction
            .prepare_cached(
                "INSERT INTO items (tbl, pk, sk, item, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tbl, pk, sk) DO UPDATE SET item = excluded.item, expires_at = excluded.expires_at",
            )?
            .execute(params![self.spec.name, row_key.pk, row_key.sk, json, self.spec.expiry_of(new)])?;
        write_index_entries(transaction, &self.spec, row_key, old, Some(new))?;
        let kind = if old.is_some() { ChangeKind::Modify } else { ChangeKind::Insert };
        self.record_change(transaction, kind, new, old, Some(new), false)
    }

    fn remove(
        &self,
        transaction: &Transaction<'_>,
        row_key: &RowKey,
        old: &Item,
        by_ttl: bool,
    ) -> Result<(), TableError> {
        transaction
            .prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")?
            .execute(params![self.spec.name, row_key.pk, row_key.sk])?;
        write_index_entries(transaction, &self.spec, row_key, Some(old), None)?;
        self.record_change(transaction, ChangeKind::Remove, old, Some(old), None, by_ttl)
    }

    fn record_change(
        &self,
        transaction: &Transaction<'_>,
        kind: ChangeKind,
        item: &Item,
        old: Option<&Item>,
        new: Option<&Item>,
        by_ttl: bool,
    ) -> Result<(), TableError> {
        let now_ms = self.clock.now_millis();
        let keys = self.spec.key_of(item)?;
        let size = item_size(&keys) + old.map_or(0, item_size) + new.map_or(0, item_size);
        let change = TableChange {
            // Filled in from the sequence number when the record is read.
            event_id: String::new(),
            event_name: kind,
            event_version: "1.1".into(),
            event_source: "aws:dynamodb".into(),
            aws_region: self.region.clone(),
            event_source_arn: format!(
                "arn:aws:dynamodb:{}:000000000000:table/{}/stream/stratus",
                self.region, self.spec.name
            ),
            dynamodb: ChangeData {
                approximate_creation_date_time: now_ms.div_euclid(1000),
                keys,
                new_image: new.cloned(),
                old_image: old.cloned(),
                sequence_number: String::new(),
                size_bytes: size as u64,
                stream_view_type: "NEW_AND_OLD_IMAGES".into(),
            },
            user_identity: by_ttl.then(UserIdentity::ttl_service),
        };
        let body = serde_json::to_string(&change).map_err(TableError::Corrupt)?;
        crate::ports::stream::append(transaction, &self.stream_source, now_ms, &body)?;
        Ok(())
    }

    fn check(condition: Option<&Condition>, current: Option<&Item>) -> Result<(), TableError> {
        match condition {
            Some(condition) if !condition.evaluate(current) => Err(TableError::ConditionFailed),
            _ => Ok(()),
        }
    }

    /// The item an update produces, validated.
    fn updated_item(
        &self,
        key: &Item,
        current: Option<&Item>,
        actions: &[UpdateAction],
    ) -> Result<Item, TableError> {
        let mut next = current.cloned().unwrap_or_else(|| key.clone());
        expr::apply(&mut next, actions)?;
        self.spec.validate_item(&next)?;
        Ok(next)
    }

    fn read_item(&self, connection: &Connection, row_key: &RowKey) -> Result<Option<Item>, TableError> {
        let json: Option<String> = connection
            .prepare_cached(
                "SELECT item FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3
                 AND (expires_at IS NULL OR expires_at > ?4)",
            )?
            .query_row(params![self.spec.name, row_key.pk, row_key.sk, self.now_seconds()], |row| row.get(0))
            .optional()?;
        json.map(|json| serde_json::from_str(&json).map_err(TableError::Corrupt)).transpose()
    }
}

#[async_trait]
impl Table for SqliteTable {
    fn spec(&self) -> &TableSpec {
        &self.inner.spec
    }

    async fn get(&self, key: &Item) -> Result<Option<Item>, TableError> {
        self.inner.spec.validate_key(key)?;
        let row_key = self.inner.row_key(key);
        self.inner.db.read(|connection| self.inner.read_item(connection, &row_key))
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.inner.spec.validate_item(&item)?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .db
            .write(move |transaction| {
                let row_key = inner.row_key(&item);
                let old = inner.load_live(transaction, &row_key)?;
                Inner::check(condition.as_ref(), old.as_ref())?;
                inner.store(transaction, &row_key, old.as_ref(), &item)?;
                Ok(old)
            })
            .await
    }

    async fn update(
        &self,
        key: &Item,
        actions: &[UpdateAction],
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.inner.spec.validate_key(key)?;
        self.inner.spec.validate_actions(actions)?;
        let inner = Arc::clone(&self.inner);
        let (key, actions) = (key.clone(), actions.to_vec());
        self.inner
            .db
            .write(move |transaction| {
                let row_key = inner.row_key(&key);
                let old = inner.load_live(transaction, &row_key)?;
                Inner::check(condition.as_ref(), old.as_ref())?;
                let new = inner.updated_item(&key, old.as_ref(), &actions)?;
                inner.store(transaction, &row_key, old.as_ref(), &new)?;
                Ok(new)
            })
            .await
    }

    async fn delete(&self, key: &Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.inner.spec.validate_key(key)?;
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        self.inner
            .db
            .write(move |transaction| {
                let row_key = inner.row_key(&key);
                let old = inner.load_live(transaction, &row_key)?;
                Inner::check(condition.as_ref(), old.as_ref())?;
                if let Some(old) = &old {
                    inner.remove(transaction, &row_key, old, false)?;
                }
                Ok(old)
            })
            .await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        query.validate(&self.inner.spec)?;
        let plan = QueryPlan::new(&self.inner.spec, &query)?;
        self.inner.db.read(|connection| plan.run(connection, &self.inner, &query))
    }

    async fn transact_write(&self, operations: Vec<TransactOp>) -> Result<(), TableError> {
        super::check_transaction_size(&operations)?;
        let mut seen = HashSet::new();
        for operation in &operations {
            let key = match operation {
                TransactOp::Put { item, .. } => {
                    self.inner.spec.validate_item(item)?;
                    self.inner.spec.key_of(item)?
                }
                TransactOp::Update { key, actions, .. } => {
                    self.inner.spec.validate_key(key)?;
                    self.inner.spec.validate_actions(actions)?;
                    key.clone()
                }
                TransactOp::Delete { key, .. } | TransactOp::ConditionCheck { key, .. } => {
                    self.inner.spec.validate_key(key)?;
                    key.clone()
                }
            };
            if !seen.insert(self.inner.row_key(&key)) {
                return Err(TableError::DuplicateTransactionItem);
            }
        }
        let inner = Arc::clone(&self.inner);
        self.inner.db.write(move |transaction| inner.transact(transaction, &operations)).await
    }
}

/// What one transaction operation will write once every condition has passed.
enum Planned {
    Store { row_key: RowKey, old: Option<Item>, new: Item },
    Remove { row_key: RowKey, old: Item },
    Nothing,
}

impl Inner {
    fn transact(&self, transaction: &Transaction<'_>, operations: &[TransactOp]) -> Result<(), TableError> {
        let mut reasons = Vec::with_capacity(operations.len());
        let mut planned = Vec::with_capacity(operations.len());
        for operation in operations {
            match self.plan(transaction, operation)? {
                Ok(plan) => {
                    reasons.push(CancellationReason::None);
                    planned.push(plan);
                }
                Err(reason) => reasons.push(reason),
            }
        }
        if reasons.iter().any(|reason| *reason != CancellationReason::None) {
            return Err(TableError::TransactionCanceled { reasons });
        }
        for plan in planned {
            match plan {
                Planned::Store { row_key, old, new } => {
                    self.store(transaction, &row_key, old.as_ref(), &new)?;
                }
                Planned::Remove { row_key, old } => self.remove(transaction, &row_key, &old, false)?,
                Planned::Nothing => {}
            }
        }
        Ok(())
    }

    /// Checks one operation's condition against the current state; the outer `Err` is a storage
    /// failure, the inner one a reason to cancel.
    fn plan(
        &self,
        transaction: &Transaction<'_>,
        operation: &TransactOp,
    ) -> Result<Result<Planned, CancellationReason>, TableError> {
        let (key, condition) = match operation {
            TransactOp::Put { item, condition } => (self.spec.key_of(item)?, condition.as_ref()),
            TransactOp::Update { key, condition, .. } | TransactOp::Delete { key, condition } => {
                (key.clone(), condition.as_ref())
            }
            TransactOp::ConditionCheck { key, condition } => (key.clone(), Some(condition)),
        };
        let row_key = self.row_key(&key);
        let old = self.load_live(transaction, &row_key)?;
        if condition.is_some_and(|condition| !condition.evaluate(old.as_ref())) {
            return Ok(Err(CancellationReason::ConditionalCheckFailed));
        }
        Ok(Ok(match operation {
            TransactOp::Put { item, .. } => Planned::Store { row_key, old, new: item.clone() },
            TransactOp::Update { actions, .. } => match self.updated_item(&key, old.as_ref(), actions) {
                Ok(new) => Planned::Store { row_key, old, new },
                Err(error) => return Ok(Err(CancellationReason::Validation(error.to_string()))),
            },
            TransactOp::Delete { .. } => match old {
                Some(old) => Planned::Remove { row_key, old },
                None => Planned::Nothing,
            },
            TransactOp::ConditionCheck { .. } => Planned::Nothing,
        }))
    }
}

/// A query translated to SQL over the items table or an index.
struct QueryPlan {
    sql: String,
    parameters: Vec<SqlValue>,
    index: Option<super::IndexSpec>,
}

impl QueryPlan {
    fn new(spec: &TableSpec, query: &Query) -> Result<Self, TableError> {
        let index = query.index.as_deref().map(|name| spec.find_index(name)).transpose()?.cloned();
        let (mut lower, mut upper) = sort_range(query.sort.as_ref());
        let direction = if query.forward { "ASC" } else { "DESC" };
        let mut parameters = vec![SqlValue::Text(spec.name.clone())];
        let mut sql;
        let live = "(i.expires_at IS NULL OR i.expires_at > ?)";
        match &index {
            None => {
                sql = String::from("SELECT i.item FROM items i WHERE i.tbl = ? AND i.pk = ?");
                parameters.push(SqlValue::Blob(encode(&query.partition)));
                if let Some(cursor) = &query.start_after {
                    let after = cursor_sort_key(spec, query, cursor)?;
                    tighten(&mut lower, &mut upper, query.forward, after);
                }
                push_range(&mut sql, &mut parameters, "i.sk", lower, upper);
                sql.push_str(&format!(" AND {live} ORDER BY i.sk {direction}"));
            }
            Some(index) => {
                // A projecting index answers from its entries alone; one holding whole items
                // reads them from `items`.
                let (select, live) = if index.projection == super::Projection::All {
                    (
                        "SELECT i.item FROM index_entries e JOIN items i
                         ON i.tbl = e.tbl AND i.pk = e.pk AND i.sk = e.sk",
                        live,
                    )
                } else {
                    ("SELECT e.item FROM index_entries e", "(e.expires_at IS NULL OR e.expires_at > ?)")
                };
                sql = format!("{select} WHERE e.tbl = ? AND e.idx = ? AND e.ipk = ?");
                parameters.push(SqlValue::Text(index.name.clone()));
                parameters.push(SqlValue::Blob(encode(&query.partition)));
                push_range(&mut sql, &mut parameters, "e.isk", lower, upper);
                if let Some(cursor) = &query.start_after {
                    let (isk, row_key) = cursor_index_key(spec, index, query, cursor)?;
                    let comparison = if query.forward { ">" } else { "<" };
                    sql.push_str(&format!(" AND (e.isk, e.pk, e.sk) {comparison} (?, ?, ?)"));
                    parameters.extend([
                        SqlValue::Blob(isk),
                        SqlValue::Blob(row_key.pk),
                        SqlValue::Blob(row_key.sk),
                    ]);
                }
                sql.push_str(&format!(
                    " AND {live} ORDER BY e.isk {direction}, e.pk {direction}, e.sk {direction}"
                ));
            }
        }
        sql.push_str(" LIMIT ?");
        Ok(Self { sql, parameters, index })
    }

    fn run(&self, connection: &Connection, inner: &Inner, query: &Query) -> Result<Page, TableError> {
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut parameters = self.parameters.clone();
        parameters.push(SqlValue::Integer(inner.now_seconds()));
        // One row more than needed tells whether another page exists.
        parameters.push(SqlValue::Integer(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)));
        let mut statement = connection.prepare_cached(&self.sql)?;
        let mut rows = statement.query(params_from_iter(parameters))?;
        let (mut items, mut evaluated, mut bytes) = (Vec::new(), 0usize, 0usize);
        // The last item evaluated when a filter left it out; otherwise it is the last in `items`.
        let mut filtered_out: Option<Item> = None;
        let mut more = false;
        while let Some(row) = rows.next()? {
            if evaluated == limit || bytes >= MAX_PAGE_BYTES {
                more = true;
                break;
            }
            let json: String = row.get(0)?;
            bytes += json.len();
            let item: Item = serde_json::from_str(&json).map_err(TableError::Corrupt)?;
            evaluated += 1;
            if query.filter.as_ref().is_none_or(|filter| filter.evaluate(Some(&item))) {
                items.push(item);
                filtered_out = None;
            } else {
                filtered_out = Some(item);
            }
        }
        let last = filtered_out.as_ref().or(items.last());
        let next = match (more, last) {
            (true, Some(item)) => Some(Cursor(self.cursor_key(&inner.spec, item)?)),
            _ => None,
        };
        Ok(Page { items, next })
    }

    fn cursor_key(&self, spec: &TableSpec, item: &Item) -> Result<Item, TableError> {
        let mut key = spec.key_of(item)?;
        if let Some(index) = &self.index {
            for attribute in std::iter::once(&index.partition_key).chain(index.sort_key.iter()) {
                if let Some(value) = item.get(&attribute.name) {
                    key.insert(attribute.name.clone(), value.clone());
                }
            }
        }
        Ok(key)
    }
}

type Range = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn sort_range(condition: Option<&SortCondition>) -> Range {
    use Bound::{Excluded, Included, Unbounded};
    match condition {
        None => (Unbounded, Unbounded),
        Some(SortCondition::Eq(value)) => (Included(encode(value)), Included(encode(value))),
        Some(SortCondition::Lt(value)) => (Unbounded, Excluded(encode(value))),
        Some(SortCondition::Le(value)) => (Unbounded, Included(encode(value))),
        Some(SortCondition::Gt(value)) => (Excluded(encode(value)), Unbounded),
        Some(SortCondition::Ge(value)) => (Included(encode(value)), Unbounded),
        Some(SortCondition::Between(low, high)) => (Included(encode(low)), Included(encode(high))),
        Some(SortCondition::BeginsWith(prefix)) => {
            let prefix = encode(prefix);
            let upper = prefix_successor(&prefix).map_or(Unbounded, Excluded);
            (Included(prefix), upper)
        }
    }
}

/// Narrows the range to what lies after the cursor in the direction of reading. A cursor
/// outside the range never widens it.
fn tighten(lower: &mut Bound<Vec<u8>>, upper: &mut Bound<Vec<u8>>, forward: bool, after: Vec<u8>) {
    let bound = if forward { lower } else { upper };
    let stricter = match &*bound {
        Bound::Unbounded => true,
        Bound::Included(current) | Bound::Excluded(current) => {
            if forward {
                after >= *current
            } else {
                after <= *current
            }
        }
    };
    if stricter {
        *bound = Bound::Excluded(after);
    }
}

fn push_range(
    sql: &mut String,
    parameters: &mut Vec<SqlValue>,
    column: &str,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
) {
    match lower {
        Bound::Included(value) => {
            sql.push_str(&format!(" AND {column} >= ?"));
            parameters.push(SqlValue::Blob(value));
        }
        Bound::Excluded(value) => {
            sql.push_str(&format!(" AND {column} > ?"));
            parameters.push(SqlValue::Blob(value));
        }
        Bound::Unbounded => {}
    }
    match upper {
        Bound::Included(value) => {
            sql.push_str(&format!(" AND {column} <= ?"));
            parameters.push(SqlValue::Blob(value));
        }
        Bound::Excluded(value) => {
            sql.push_str(&format!(" AND {column} < ?"));
            parameters.push(SqlValue::Blob(value));
        }
        Bound::Unbounded => {}
    }
}

/// The encoded sort key a base-table cursor resumes after.
fn cursor_sort_key(spec: &TableSpec, query: &Query, cursor: &Cursor) -> Result<Vec<u8>, TableError> {
    let table_key = spec.check_cursor(query, cursor)?;
    let sort = spec.sort_key.as_ref().and_then(|sort| table_key.get(&sort.name));
    Ok(sort.map(encode).unwrap_or_default())
}

/// The encoded index sort key and table key an index cursor resumes after.
fn cursor_index_key(
    spec: &TableSpec,
    index: &super::IndexSpec,
    query: &Query,
    cursor: &Cursor,
) -> Result<(Vec<u8>, RowKey), TableError> {
    let table_key = spec.check_cursor(query, cursor)?;
    let sort = spec.index_key(index, cursor.key()).and_then(|(_, sort)| sort);
    let pk = encode(&table_key[&spec.partition_key.name]);
    let sk = spec.sort_key.as_ref().map(|sort| encode(&table_key[&sort.name])).unwrap_or_default();
    Ok((sort.map(encode).unwrap_or_default(), RowKey { pk, sk }))
}

impl From<DbError> for TableError {
    fn from(error: DbError) -> Self {
        Self::storage(error)
    }
}

impl From<rusqlite::Error> for TableError {
    fn from(error: rusqlite::Error) -> Self {
        Self::storage(DbError::Sqlite(error))
    }
}
