//! A DAX-like read cache in front of any [`Table`]: an item cache for `get` and a query cache
//! for `query`, each byte-bounded with a time to live, misses (absent items, empty pages)
//! cached like hits. Consistent reads ([`Table::get_consistent`], [`Query::consistent`]) pass
//! it by and fill nothing.
//!
//! Stronger than DAX, because it shares the process with the writers (ARCHITECTURE.md says
//! what a reader can observe): a write through the decorator stores the item it wrote in the
//! item cache (write-through) and drops the cached queries of every partition the item left or
//! entered — the table's and each index's, old image and new — before the write returns;
//! [`CachedTable::invalidate`] does the same for a change-stream record, which is how writes by
//! anyone else (another process, the CLI) reach it.
//!
//! Two races are closed, not just made unlikely. A read that missed and went to the table may
//! return after a write changed what it read: every cache slot is guarded by a stamp (a counter
//! per stripe of keys, bumped by every write and invalidation under the stripe's lock), and the
//! read fills the cache only if the stamp it took before reading is unchanged. Two writers of
//! the same item could store their items in the cache in the other order than they committed:
//! writers of one stripe take turns (an async lock held across the write), so the cache always
//! ends with the last committed item.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::keys::encode;
use super::{Item, Page, Query, Table, TableError, TableSpec, TransactOp, UpdateAction, item_size};
use crate::infra::clock::Clock;
use crate::infra::stamps::Stamps;
use crate::ports::table::change::TableChange;

/// Stripes of the writer locks: enough that unrelated keys rarely share one.
const STRIPES: usize = 1024;
/// Query shapes cached per partition (filters, cursors, limits, directions); past it the
/// partition's entry starts over, so one client's paging cannot grow an entry without end.
const MAX_SHAPES_PER_PARTITION: usize = 64;
/// What an entry costs beyond its items, for the byte bound.
const ENTRY_OVERHEAD: usize = 96;

/// The cache's size and lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an entry may answer reads (DAX's default: 5 minutes).
    pub ttl: Duration,
    /// Memory for cached items, in bytes.
    pub item_bytes: u64,
    /// Memory for cached query pages, in bytes.
    pub query_bytes: u64,
}

/// Reads answered from memory and reads that went to the table, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub item_hits: u64,
    pub item_misses: u64,
    pub query_hits: u64,
    pub query_misses: u64,
}

/// An item's primary key, encoded (partition, sort — empty without a sort key).
type ItemKey = (Vec<u8>, Vec<u8>);

/// One partition of the table (`index: None`) or of an index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionId {
    index: Option<Arc<str>>,
    partition: Vec<u8>,
}

/// An item (or its absence) and when it was read, in the clock's milliseconds. Lifetimes are
/// checked against the table's clock, so they follow it in tests as in production; entries past
/// theirs are evicted like any other when room is needed.
#[derive(Debug)]
struct CachedItem {
    item: Option<Arc<Item>>,
    read_at: i64,
}

#[derive(Debug)]
struct CachedPage {
    page: Page,
    read_at: i64,
}

/// The cached pages of one partition, by query shape; replaced whole when a shape is added, so
/// readers never see it change.
#[derive(Debug, Default)]
struct PartitionPages {
    pages: HashMap<String, Arc<CachedPage>>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Counters {
    item_hits: AtomicU64,
    item_misses: AtomicU64,
    query_hits: AtomicU64,
    query_misses: AtomicU64,
}

/// The decorator: `CachedTable::new(table, clock, settings)` is a [`Table`] again.
#[derive(Debug)]
pub struct CachedTable {
    inner: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    items: quick_cache::sync::Cache<ItemKey, Arc<CachedItem>, Weight>,
    queries: quick_cache::sync::Cache<PartitionId, Arc<PartitionPages>, Weight>,
    item_stamps: Stamps,
    partition_stamps: Stamps,
    /// Writers of one stripe take turns, so the item cache ends with the last committed item.
    writers: Box<[tokio::sync::Mutex<()>]>,
    writer_hasher: RandomState,
    index_names: Vec<Arc<str>>,
    ttl_millis: i64,
    counters: Counters,
}

impl CachedTable {
    pub fn new(inner: Arc<dyn Table>, clock: Arc<dyn Clock>, settings: CacheSettings) -> Self {
        let estimate = |bytes: u64, each: u64| usize::try_from(bytes / each).unwrap_or(usize::MAX).max(16);
        let items = quick_cache::sync::Cache::with_weighter(
            estimate(settings.item_bytes, 512),
            settings.item_bytes,
            Weight,
        );
        let queries = quick_cache::sync::Cache::with_weighter(
            estimate(settings.query_bytes, 4096),
            settings.query_bytes,
            Weight,
        );
        let index_names = inner.spec().indexes.iter().map(|index| Arc::from(index.name.as_str())).collect();
        Self {
            inner,
            clock,
            items,
            queries,
            item_stamps: Stamps::new(),
            partition_stamps: Stamps::new(),
            writers: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            writer_hasher: RandomState::new(),
            index_names,
            ttl_millis: i64::try_from(settings.ttl.as_millis()).unwrap_or(i64::MAX),
            counters: Counters::default(),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            item_hits: read(&self.counters.item_hits),
            item_misses: read(&self.counters.item_misses),
            query_hits: read(&self.counters.query_hits),
            query_misses: read(&self.counters.query_misses),
        }
    }

    /// Forgets what a change-stream record changed: the item, and the queries of every
    /// partition its old or new image is in. Idempotent, so a redelivered record costs a miss.
    pub fn invalidate(&self, change: &TableChange) {
        let data = &change.dynamodb;
        let Ok(key) = self.spec().key_of(&data.keys) else { return };
        self.forget_item(&self.item_key(&key));
        if data.old_image.is_none() && data.new_image.is_none() && !self.index_names.is_empty() {
            // Keys only: which index partitions the item was in is unknown.
            self.forget_all_queries();
            return;
        }
        self.forget_partitions(
            [Some(&key), data.old_image.as_ref(), data.new_image.as_ref()].into_iter().flatten(),
        );
    }

    fn spec(&self) -> &TableSpec {
        self.inner.spec()
    }

    fn item_key(&self, key: &Item) -> ItemKey {
        let spec = self.spec();
        let part = |name: &str| key.get(name).map(encode).unwrap_or_default();
        (
            part(&spec.partition_key.name),
            spec.sort_key.as_ref().map(|sort| part(&sort.name)).unwrap_or_default(),
        )
    }

    fn now_seconds(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    fn expired(&self, item: &Item) -> bool {
        self.spec().expiry_of(item).is_some_and(|expiry| expiry <= self.now_seconds())
    }

    fn fresh(&self, read_at: i64) -> bool {
        self.clock.now_millis().saturating_sub(read_at) < self.ttl_millis
    }

    fn cached_item(&self, item: Option<Arc<Item>>) -> Arc<CachedItem> {
        Arc::new(CachedItem { item, read_at: self.clock.now_millis() })
    }

    /// The cached item (or its absence), while its lifetime lasts.
    fn lookup_item(&self, id: &ItemKey) -> Option<Arc<CachedItem>> {
        self.items.get(id).filter(|cached| self.fresh(cached.read_at))
    }

    fn remember_item(&self, key: &ItemKey, item: Option<Item>) {
        let cached = self.cached_item(item.map(Arc::new));
        self.item_stamps.change(key, || self.items.insert(key.clone(), cached));
    }

    fn forget_item(&self, key: &ItemKey) {
        self.item_stamps.change(key, || {
            self.items.remove(key);
        });
    }

    /// Every partition (the table's, each index's) these items are in.
    fn partitions_of<'a>(&'a self, items: impl IntoIterator<Item = &'a Item>) -> Vec<PartitionId> {
        let spec = self.spec();
        let mut partitions = Vec::new();
        for item in items {
            if let Some(partition) = item.get(&spec.partition_key.name) {
                partitions.push(PartitionId { index: None, partition: encode(partition) });
            }
            for (index, name) in spec.indexes.iter().zip(&self.index_names) {
                if let Some((partition, _)) = spec.index_key(index, item) {
                    partitions
                        .push(PartitionId { index: Some(Arc::clone(name)), partition: encode(partition) });
                }
            }
        }
        partitions.sort_by(|a, b| (&a.index, &a.partition).cmp(&(&b.index, &b.partition)));
        partitions.dedup();
        partitions
    }

    fn forget_partitions<'a>(&'a self, items: impl IntoIterator<Item = &'a Item>) {
        for id in self.partitions_of(items) {
            self.partition_stamps.change(&id, || {
                self.queries.remove(&id);
            });
        }
    }

    fn forget_all_queries(&self) {
        self.partition_stamps.bump_all();
        self.queries.clear();
    }

    fn writer_stripe(&self, key: &ItemKey) -> usize {
        usize::try_from(self.writer_hasher.hash_one(key) % STRIPES as u64).unwrap_or_default()
    }

    /// Takes the writer turns of these items, in stripe order so two transactions cannot wait
    /// on each other.
    async fn writer_turns(&self, keys: &[ItemKey]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.iter().map(|key| self.writer_stripe(key)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            turns.push(self.writers[stripe].lock().await);
        }
        turns
    }

    /// The item as it is before a write, from the cache when it holds it. Only needed where a
    /// write does not say what it replaced and the item's index partitions may change.
    async fn before_write(&self, key: &Item, id: &ItemKey) -> Result<Option<Item>, TableError> {
        if let Some(cached) = self.lookup_item(id) {
            return Ok(cached.item.as_deref().cloned());
        }
        self.inner.get_consistent(key).await
    }

    fn touches_an_index(&self, actions: &[UpdateAction]) -> bool {
        self.spec().indexes.iter().any(|index| {
            let names = std::iter::once(&index.partition_key).chain(index.sort_key.iter());
            names.into_iter().any(|key| actions.iter().any(|action| action.path().attribute() == key.name))
        })
    }

    /// The page without the items whose own TTL has passed since it was read.
    fn live_page(&self, page: &Page) -> Page {
        if self.spec().ttl_attribute.is_none() {
            return page.clone();
        }
        let items = page.items.iter().filter(|item| !self.expired(item)).cloned().collect();
        Page { items, next: page.next.clone() }
    }

    fn fill_page(&self, id: &PartitionId, stamp: u64, shape: String, page: &Page) {
        self.partition_stamps.fill_if_unchanged(id, stamp, || {
            let current = self.queries.get(id);
            let mut pages = match current.as_deref() {
                Some(current) if current.pages.len() < MAX_SHAPES_PER_PARTITION => {
                    PartitionPages { pages: current.pages.clone(), bytes: current.bytes }
                }
                _ => PartitionPages::default(),
            };
            let bytes = ENTRY_OVERHEAD + shape.len() + page.items.iter().map(item_size).sum::<usize>();
            let cached = Arc::new(CachedPage { page: page.clone(), read_at: self.clock.now_millis() });
            if let Some(replaced) = pages.pages.insert(shape, cached) {
                let replaced = replaced.page.items.iter().map(item_size).sum::<usize>();
                pages.bytes -= (ENTRY_OVERHEAD + replaced).min(pages.bytes);
            }
            pages.bytes += bytes;
            self.queries.insert(id.clone(), Arc::new(pages));
        });
    }

    /// After a failed write the cache may hold what made a condition fail elsewhere: forget the
    /// items, so the next read asks the table.
    fn forget_items(&self, ids: &[ItemKey]) {
        for id in ids {
            self.forget_item(id);
        }
    }
}

/// What an entry costs against the cache's bytes.
#[derive(Debug, Clone, Copy)]
struct Weight;

impl quick_cache::Weighter<ItemKey, Arc<CachedItem>> for Weight {
    fn weight(&self, key: &ItemKey, cached: &Arc<CachedItem>) -> u64 {
        (ENTRY_OVERHEAD + key.0.len() + key.1.len() + cached.item.as_deref().map_or(0, item_size)) as u64
    }
}

impl quick_cache::Weighter<PartitionId, Arc<PartitionPages>> for Weight {
    fn weight(&self, id: &PartitionId, pages: &Arc<PartitionPages>) -> u64 {
        (ENTRY_OVERHEAD + id.partition.len() + pages.bytes) as u64
    }
}

/// A query's shape apart from its partition: the key of its page within the partition's entry.
/// `Debug` of these types is structural and deterministic (items are ordered maps).
fn shape(query: &Query) -> String {
    format!("{:?}|{}|{:?}|{:?}|{:?}", query.sort, query.forward, query.limit, query.start_after, query.filter)
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl Table for CachedTable {
    fn spec(&self) -> &TableSpec {
        self.inner.spec()
    }

    async fn get(&self, key: &Item) -> Result<Option<Item>, TableError> {
        Ok(self.get_shared(key).await?.map(Arc::unwrap_or_clone))
    }

    async fn get_shared(&self, key: &Item) -> Result<Option<Arc<Item>>, TableError> {
        self.spec().validate_key(key)?;
        let id = self.item_key(key);
        if let Some(cached) = self.lookup_item(&id) {
            count(&self.counters.item_hits);
            return Ok(cached.item.clone().filter(|item| !self.expired(item)));
        }
        count(&self.counters.item_misses);
        let stamp = self.item_stamps.current(&id);
        let item = self.inner.get(key).await?.map(Arc::new);
        let cached = self.cached_item(item.clone());
        self.item_stamps.fill_if_unchanged(&id, stamp, || self.items.insert(id.clone(), cached));
        Ok(item)
    }

    async fn get_consistent(&self, key: &Item) -> Result<Option<Item>, TableError> {
        self.inner.get_consistent(key).await
    }

    async fn put(&self, item: Item, condition: Option<super::Condition>) -> Result<Option<Item>, TableError> {
        let id = self.item_key(&self.spec().key_of(&item)?);
        let _turn = self.writer_turns(std::slice::from_ref(&id)).await;
        match self.inner.put(item.clone(), condition).await {
            Ok(old) => {
                self.forget_partitions(old.iter().chain([&item]));
                self.remember_item(&id, Some(item));
                Ok(old)
            }
            Err(error) => {
                self.forget_item(&id);
                Err(error)
            }
        }
    }

    async fn update(
        &self,
        key: &Item,
        actions: &[UpdateAction],
        condition: Option<super::Condition>,
    ) -> Result<Item, TableError> {
        self.spec().validate_key(key)?;
        let id = self.item_key(key);
        let _turn = self.writer_turns(std::slice::from_ref(&id)).await;
        // Without an index attribute among the actions the item stays in the same partitions,
        // which the new item names.
        let old = if self.touches_an_index(actions) { self.before_write(key, &id).await? } else { None };
        match self.inner.update(key, actions, condition).await {
            Ok(new) => {
                self.forget_partitions(old.iter().chain([&new]));
                self.remember_item(&id, Some(new.clone()));
                Ok(new)
            }
            Err(error) => {
                self.forget_item(&id);
                Err(error)
            }
        }
    }

    async fn delete(
        &self,
        key: &Item,
        condition: Option<super::Condition>,
    ) -> Result<Option<Item>, TableError> {
        self.spec().validate_key(key)?;
        let id = self.item_key(key);
        let _turn = self.writer_turns(std::slice::from_ref(&id)).await;
        match self.inner.delete(key, condition).await {
            Ok(old) => {
                self.forget_partitions(old.iter().chain([key]));
                self.remember_item(&id, None);
                Ok(old)
            }
            Err(error) => {
                self.forget_item(&id);
                Err(error)
            }
        }
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        if query.consistent {
            return self.inner.query(query).await;
        }
        query.validate(self.spec())?;
        let index = match &query.index {
            None => None,
            Some(name) => self.index_names.iter().find(|known| known.as_ref() == name.as_str()).cloned(),
        };
        let id = PartitionId { index, partition: encode(&query.partition) };
        let shape = shape(&query);
        let hit = self.queries.get(&id).and_then(|pages| pages.pages.get(&shape).cloned());
        if let Some(cached) = hit.filter(|cached| self.fresh(cached.read_at)) {
            count(&self.counters.query_hits);
            return Ok(self.live_page(&cached.page));
        }
        count(&self.counters.query_misses);
        let stamp = self.partition_stamps.current(&id);
        let page = self.inner.query(query).await?;
        self.fill_page(&id, stamp, shape, &page);
        Ok(page)
    }

    async fn transact_write(&self, operations: Vec<TransactOp>) -> Result<(), TableError> {
        let spec = self.spec();
        let mut keys = Vec::with_capacity(operations.len());
        for operation in &operations {
            let key = match operation {
                TransactOp::Put { item, .. } => spec.key_of(item),
                TransactOp::Update { key, .. }
                | TransactOp::Delete { key, .. }
                | TransactOp::ConditionCheck { key, .. } => spec.validate_key(key).map(|()| key.clone()),
            };
            match key {
                Ok(key) => keys.push(key),
                // The table says what is wrong with it; nothing is written, nothing to forget.
                Err(_) => return self.inner.transact_write(operations).await,
            }
        }
        let ids: Vec<ItemKey> = keys.iter().map(|key| self.item_key(key)).collect();
        let _turns = self.writer_turns(&ids).await;
        // A transaction says neither what it replaced nor (for updates) what it wrote: with
        // indexes, read both, so the partitions an item left and entered are known.
        let with_indexes = !spec.indexes.is_empty();
        let mut before = Vec::with_capacity(operations.len());
        for ((operation, key), id) in operations.iter().zip(&keys).zip(&ids) {
            let writes = !matches!(operation, TransactOp::ConditionCheck { .. });
            before.push(if writes && with_indexes { self.before_write(key, id).await? } else { None });
        }
        if let Err(error) = self.inner.transact_write(operations.clone()).await {
            self.forget_items(&ids);
            return Err(error);
        }
        for (((operation, key), id), old) in operations.into_iter().zip(&keys).zip(ids).zip(before) {
            match operation {
                TransactOp::ConditionCheck { .. } => {}
                TransactOp::Put { item, .. } => {
                    self.forget_partitions(old.iter().chain([key, &item]));
                    self.remember_item(&id, Some(item));
                }
                TransactOp::Delete { .. } => {
                    self.forget_partitions(old.iter().chain([key]));
                    self.remember_item(&id, None);
                }
                TransactOp::Update { .. } if with_indexes => match self.inner.get_consistent(key).await {
                    Ok(new) => {
                        self.forget_partitions(old.iter().chain(new.iter()).chain([key]));
                        self.remember_item(&id, new);
                    }
                    // The transaction committed: its caller hears so. Where the item went is
                    // unknown, so every cached query goes.
                    Err(_) => {
                        self.forget_item(&id);
                        self.forget_all_queries();
                    }
                },
                TransactOp::Update { .. } => {
                    self.forget_partitions([key]);
                    self.forget_item(&id);
                }
            }
        }
        Ok(())
    }
}
