//! The table port: a DynamoDB-shaped key-value table (partition key, optional sort key,
//! secondary indexes, conditional writes, queries with cursors, transactions, TTL).
//!
//! Adapters: [`sqlite::SqliteTable`] (embedded, the default). Every adapter must pass
//! [`conformance`], the suite written once against this trait.

pub mod cached;
pub mod change;
mod config;
pub use config::TableConfig;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod decode;
mod expr;
mod keys;
pub mod sqlite;
mod value;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

pub use expr::{Comparison, Condition, Path, Segment, SetValue, UpdateAction, UpdateError};
pub use value::{AttributeValue, Item, Number, NumberError, ValueType, item_size};

/// DynamoDB's limits.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The most a transaction's operations may carry together.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// A query page stops after this many bytes of items, as DynamoDB's 1 MB pages do.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

#[async_trait]
pub trait Table: Send + Sync + Debug + 'static {
    fn spec(&self) -> &TableSpec;

    /// The item with this primary key, unless it does not exist or its TTL has passed.
    async fn get(&self, key: &Item) -> Result<Option<Item>, TableError>;

    /// Like [`get`](Self::get), but never answered from a cache (DynamoDB's `ConsistentRead`):
    /// the item as the last acknowledged write left it. An adapter without a cache reads
    /// consistently anyway, which is what this default says.
    async fn get_consistent(&self, key: &Item) -> Result<Option<Item>, TableError> {
        self.get(key).await
    }

    /// Like [`get`](Self::get), the item shared rather than copied, for readers that only look
    /// at it: a cache in front hands out the item it holds.
    async fn get_shared(&self, key: &Item) -> Result<Option<Arc<Item>>, TableError> {
        Ok(self.get(key).await?.map(Arc::new))
    }

    /// Creates or replaces an item; returns the item it replaced.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<Option<Item>, TableError>;

    /// Applies `actions` to the item (creating it when missing); returns the new item.
    async fn update(
        &self,
        key: &Item,
        actions: &[UpdateAction],
        condition: Option<Condition>,
    ) -> Result<Item, TableError>;

    /// Deletes an item; returns it if it existed.
    async fn delete(&self, key: &Item, condition: Option<Condition>) -> Result<Option<Item>, TableError>;

    /// Items of one partition of the table or of an index, in sort-key order.
    async fn query(&self, query: Query) -> Result<Page, TableError>;

    /// Up to 100 writes on distinct items, all applied or none; every condition is checked
    /// against the same snapshot.
    async fn transact_write(&self, operations: Vec<TransactOp>) -> Result<(), TableError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    fn value_type(self) -> ValueType {
        match self {
            Self::S => ValueType::S,
            Self::N => ValueType::N,
            Self::B => ValueType::B,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    pub name: String,
    pub kind: KeyType,
}

impl KeyAttribute {
    pub fn new(name: impl Into<String>, kind: KeyType) -> Self {
        Self { name: name.into(), kind }
    }

    pub fn string(name: impl Into<String>) -> Self {
        Self::new(name, KeyType::S)
    }

    pub fn number(name: impl Into<String>) -> Self {
        Self::new(name, KeyType::N)
    }

    pub fn binary(name: impl Into<String>) -> Self {
        Self::new(name, KeyType::B)
    }
}

/// A global secondary index. Items lacking its key attributes are not in it (a sparse index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub name: String,
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
    #[serde(default)]
    pub projection: Projection,
}

/// Which attributes an index holds (DynamoDB's projection): a query on it returns only these,
/// always with the table's and the index's key attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    #[default]
    All,
    KeysOnly,
    Include(Vec<String>),
}

impl IndexSpec {
    pub fn new(name: impl Into<String>, partition_key: KeyAttribute) -> Self {
        Self { name: name.into(), partition_key, sort_key: None, projection: Projection::All }
    }

    #[must_use]
    pub fn sort_key(mut self, sort_key: KeyAttribute) -> Self {
        self.sort_key = Some(sort_key);
        self
    }

    /// Holds only the keys and `attributes` (`Projection::Include`).
    #[must_use]
    pub fn include(mut self, attributes: &[&str]) -> Self {
        self.projection = Projection::Include(attributes.iter().map(|name| (*name).to_owned()).collect());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub name: String,
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
    pub indexes: Vec<IndexSpec>,
    /// A number attribute holding epoch seconds after which the item expires.
    pub ttl_attribute: Option<String>,
}

impl TableSpec {
    pub fn new(name: impl Into<String>, partition_key: KeyAttribute) -> Self {
        Self { name: name.into(), partition_key, sort_key: None, indexes: Vec::new(), ttl_attribute: None }
    }

    #[must_use]
    pub fn sort_key(mut self, sort_key: KeyAttribute) -> Self {
        self.sort_key = Some(sort_key);
        self
    }

    #[must_use]
    pub fn index(mut self, index: IndexSpec) -> Self {
        self.indexes.push(index);
        self
    }

    #[must_use]
    pub fn ttl_attribute(mut self, name: impl Into<String>) -> Self {
        self.ttl_attribute = Some(name.into());
        self
    }

    /// Checks names the way DynamoDB does: 3–255 of `[a-zA-Z0-9_.-]`, unique index names.
    pub fn validate(&self) -> Result<(), TableError> {
        let invalid = |problem: String| Err(TableError::InvalidSpec { table: self.name.clone(), problem });
        let name_ok = |name: &str| {
            (3..=255).contains(&name.len())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !name_ok(&self.name) {
            return invalid("table names are 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'".into());
        }
        for (position, index) in self.indexes.iter().enumerate() {
            if !name_ok(&index.name) {
                return invalid(format!("index name `{}` is not valid", index.name));
            }
            if self.indexes[..position].iter().any(|other| other.name == index.name) {
                return invalid(format!("index `{}` is declared twice", index.name));
            }
        }
        if self.sort_key.as_ref().is_some_and(|sort| sort.name == self.partition_key.name) {
            return invalid("partition and sort key must be different attributes".into());
        }
        Ok(())
    }

    pub fn find_index(&self, name: &str) -> Result<&IndexSpec, TableError> {
        self.indexes
            .iter()
            .find(|index| index.name == name)
            .ok_or_else(|| TableError::UnknownIndex { table: self.name.clone(), index: name.to_owned() })
    }

    fn key_attributes(&self) -> impl Iterator<Item = (&KeyAttribute, usize)> {
        std::iter::once((&self.partition_key, MAX_PARTITION_KEY_BYTES))
            .chain(self.sort_key.iter().map(|sort| (sort, MAX_SORT_KEY_BYTES)))
    }

    /// Checks that `key` holds exactly this table's key attributes, well typed.
    pub fn validate_key(&self, key: &Item) -> Result<(), TableError> {
        for (attribute, limit) in self.key_attributes() {
            let value = key
                .get(&attribute.name)
                .ok_or_else(|| TableError::MissingKey { attribute: attribute.name.clone() })?;
            check_key_value(&attribute.name, attribute.kind, value, limit)?;
        }
        if let Some(extra) = key.keys().find(|name| !self.is_key_attribute(name)) {
            return Err(TableError::NotAKeyAttribute { attribute: extra.clone() });
        }
        Ok(())
    }

    pub fn is_key_attribute(&self, name: &str) -> bool {
        self.partition_key.name == name || self.sort_key.as_ref().is_some_and(|sort| sort.name == name)
    }

    /// The primary key of a full item, validated.
    pub fn key_of(&self, item: &Item) -> Result<Item, TableError> {
        let mut key = Item::new();
        for (attribute, limit) in self.key_attributes() {
            let value = item
                .get(&attribute.name)
                .ok_or_else(|| TableError::MissingKey { attribute: attribute.name.clone() })?;
            check_key_value(&attribute.name, attribute.kind, value, limit)?;
            key.insert(attribute.name.clone(), value.clone());
        }
        Ok(key)
    }

    /// Validates a whole item before it is written: key, size, index keys, no empty sets.
    pub fn validate_item(&self, item: &Item) -> Result<(), TableError> {
        self.key_of(item)?;
        let size = item_size(item);
        if size > MAX_ITEM_BYTES {
            return Err(TableError::ItemTooLarge { size: Some(size) });
        }
        for index in &self.indexes {
            let attributes = std::iter::once(&index.partition_key).chain(index.sort_key.iter());
            for attribute in attributes {
                if let Some(value) = item.get(&attribute.name) {
                    let limit = MAX_PARTITION_KEY_BYTES;
                    check_key_value(&attribute.name, attribute.kind, value, limit)?;
                }
            }
        }
        for (name, value) in item {
            check_no_empty_sets(name, value)?;
        }
        Ok(())
    }

    /// What every adapter refuses in an update before looking at the item: a key attribute
    /// changed, two actions on overlapping paths, `ADD`/`DELETE` below the top level.
    pub fn validate_actions(&self, actions: &[UpdateAction]) -> Result<(), TableError> {
        if let Some(action) = actions.iter().find(|action| self.is_key_attribute(action.path().attribute())) {
            return Err(TableError::KeyUpdate { attribute: action.path().attribute().to_owned() });
        }
        expr::check_disjoint(actions)?;
        expr::check_top_level(actions)?;
        Ok(())
    }

    /// Checks that `cursor` is a key a query of `query`'s partition could have returned: the
    /// table's key, plus the index's when it queries one. Returns the table key.
    pub fn check_cursor(&self, query: &Query, cursor: &Cursor) -> Result<Item, TableError> {
        let invalid = |problem: String| TableError::InvalidCursor { problem };
        let key = cursor.key();
        let table_key = self.key_of(key).map_err(|e| invalid(e.to_string()))?;
        let partition = match &query.index {
            None => table_key.get(&self.partition_key.name),
            Some(name) => {
                let index = self.find_index(name)?;
                let (partition, _) =
                    self.index_key(index, key).ok_or_else(|| invalid("it lacks the index key".into()))?;
                Some(partition)
            }
        };
        if partition != Some(&query.partition) {
            return Err(invalid("it belongs to another partition".into()));
        }
        Ok(table_key)
    }

    /// The key of `item` in `index`, or `None` when the item lacks the index's attributes.
    pub fn index_key<'a>(
        &self,
        index: &IndexSpec,
        item: &'a Item,
    ) -> Option<(&'a AttributeValue, Option<&'a AttributeValue>)> {
        let partition = item.get(&index.partition_key.name)?;
        match &index.sort_key {
            None => Some((partition, None)),
            Some(sort) => Some((partition, Some(item.get(&sort.name)?))),
        }
    }

    /// What `index` holds of `item`: `None` when it holds the whole item (`Projection::All`).
    pub fn projected(&self, index: &IndexSpec, item: &Item) -> Option<Item> {
        let included: &[String] = match &index.projection {
            Projection::All => return None,
            Projection::KeysOnly => &[],
            Projection::Include(attributes) => attributes,
        };
        let keys = self.key_attributes().map(|(attribute, _)| &attribute.name);
        let index_keys = std::iter::once(&index.partition_key).chain(index.sort_key.iter()).map(|a| &a.name);
        let names = keys.chain(index_keys).chain(included.iter());
        Some(names.filter_map(|name| Some((name.clone(), item.get(name)?.clone()))).collect())
    }

    /// The item's expiry in epoch seconds, when the table has a TTL attribute and the item a
    /// number in it (DynamoDB ignores other types).
    pub fn expiry_of(&self, item: &Item) -> Option<i64> {
        let attribute = self.ttl_attribute.as_ref()?;
        let number = item.get(attribute)?.as_n()?;
        let whole = number.as_str().split('.').next().unwrap_or_default();
        whole.parse::<i64>().ok()
    }
}

fn check_key_value(
    name: &str,
    kind: KeyType,
    value: &AttributeValue,
    limit: usize,
) -> Result<(), TableError> {
    if value.value_type() != kind.value_type() {
        return Err(TableError::KeyType {
            attribute: name.to_owned(),
            expected: kind.value_type(),
            found: value.value_type(),
        });
    }
    let size = value.size();
    let empty = matches!(value, AttributeValue::S(text) if text.is_empty())
        || matches!(value, AttributeValue::B(bytes) if bytes.is_empty());
    if empty {
        return Err(TableError::EmptyKey { attribute: name.to_owned() });
    }
    if size > limit {
        return Err(TableError::KeyTooLarge { attribute: name.to_owned(), size, limit });
    }
    Ok(())
}

fn check_no_empty_sets(name: &str, value: &AttributeValue) -> Result<(), TableError> {
    let empty_set = match value {
        AttributeValue::Ss(set) => set.is_empty(),
        AttributeValue::Ns(set) => set.is_empty(),
        AttributeValue::Bs(set) => set.is_empty(),
        AttributeValue::L(list) => return list.iter().try_for_each(|inner| check_no_empty_sets(name, inner)),
        AttributeValue::M(map) => return map.values().try_for_each(|inner| check_no_empty_sets(name, inner)),
        _ => false,
    };
    if empty_set {
        return Err(TableError::EmptySet { attribute: name.to_owned() });
    }
    Ok(())
}

/// A condition on the sort key of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum SortCondition {
    Eq(AttributeValue),
    Lt(AttributeValue),
    Le(AttributeValue),
    Gt(AttributeValue),
    Ge(AttributeValue),
    Between(AttributeValue, AttributeValue),
    BeginsWith(AttributeValue),
}

impl SortCondition {
    fn operands(&self) -> impl Iterator<Item = &AttributeValue> {
        let (first, second) = match self {
            Self::Eq(v) | Self::Lt(v) | Self::Le(v) | Self::Gt(v) | Self::Ge(v) | Self::BeginsWith(v) => {
                (v, None)
            }
            Self::Between(low, high) => (low, Some(high)),
        };
        std::iter::once(first).chain(second)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Query this index instead of the table.
    pub index: Option<String>,
    pub partition: AttributeValue,
    pub sort: Option<SortCondition>,
    /// Ascending sort-key order when true (DynamoDB's `ScanIndexForward`).
    pub forward: bool,
    /// Items evaluated (before `filter`) for this page.
    pub limit: Option<usize>,
    /// Resume after this key (the previous page's [`Page::next`]).
    pub start_after: Option<Cursor>,
    /// Applied after reading, so a page may hold fewer than `limit` items.
    pub filter: Option<Condition>,
    /// Never answered from a cache ([`Table::get_consistent`]'s counterpart).
    pub consistent: bool,
}

impl Query {
    pub fn partition(value: impl Into<AttributeValue>) -> Self {
        Self {
            index: None,
            partition: value.into(),
            sort: None,
            forward: true,
            limit: None,
            start_after: None,
            filter: None,
            consistent: false,
        }
    }

    /// Read past any cache, as of the last acknowledged write.
    #[must_use]
    pub fn consistent(mut self) -> Self {
        self.consistent = true;
        self
    }

    #[must_use]
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    #[must_use]
    pub fn sort(mut self, condition: SortCondition) -> Self {
        self.sort = Some(condition);
        self
    }

    #[must_use]
    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }

    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    #[must_use]
    pub fn start_after(mut self, cursor: Option<Cursor>) -> Self {
        self.start_after = cursor;
        self
    }

    #[must_use]
    pub fn filter(mut self, condition: Condition) -> Self {
        self.filter = Some(condition);
        self
    }

    /// Checks the query's values against the table (or index) key types.
    pub fn validate(&self, spec: &TableSpec) -> Result<(), TableError> {
        let (partition_key, sort_key) = match &self.index {
            None => (&spec.partition_key, spec.sort_key.as_ref()),
            Some(name) => {
                let index = spec.find_index(name)?;
                (&index.partition_key, index.sort_key.as_ref())
            }
        };
        check_key_value(&partition_key.name, partition_key.kind, &self.partition, MAX_PARTITION_KEY_BYTES)?;
        if let Some(condition) = &self.sort {
            let sort_key = sort_key.ok_or_else(|| TableError::InvalidQuery {
                problem: "a sort-key condition needs a sort key".into(),
            })?;
            for operand in condition.operands() {
                if operand.value_type() != sort_key.kind.value_type() {
                    return Err(TableError::KeyType {
                        attribute: sort_key.name.clone(),
                        expected: sort_key.kind.value_type(),
                        found: operand.value_type(),
                    });
                }
            }
            if matches!(condition, SortCondition::BeginsWith(_)) && sort_key.kind == KeyType::N {
                return Err(TableError::InvalidQuery {
                    problem: "begins_with needs a string or binary sort key".into(),
                });
            }
            if let SortCondition::Between(low, high) = condition
                && low.partial_compare(high) == Some(std::cmp::Ordering::Greater)
            {
                return Err(TableError::InvalidQuery { problem: "BETWEEN needs low <= high".into() });
            }
        }
        if self.limit == Some(0) {
            return Err(TableError::InvalidQuery { problem: "limit must be at least 1".into() });
        }
        Ok(())
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// DynamoDB's `LastEvaluatedKey`: the key of the last item read (table key plus index key).
/// Opaque to API clients through [`Cursor::to_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor(pub Item);

impl Cursor {
    pub fn key(&self) -> &Item {
        &self.0
    }

    /// A URL-safe string for APIs.
    pub fn to_token(&self) -> String {
        let json = serde_json::to_vec(&self.0).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn from_token(token: &str) -> Result<Self, TableError> {
        let invalid = || TableError::InvalidCursor { problem: "not a token this table issued".into() };
        let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let key: Item = serde_json::from_slice(&json).map_err(|_| invalid())?;
        Ok(Self(key))
    }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Item,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    },
    Delete {
        key: Item,
        condition: Option<Condition>,
    },
    /// Writes nothing; the transaction fails unless the condition holds.
    ConditionCheck {
        key: Item,
        condition: Condition,
    },
}

impl TransactOp {
    /// The bytes the operation carries, by DynamoDB's accounting: the item a put writes, the
    /// key and the values an update writes, the key a delete or a check names.
    pub fn size(&self) -> usize {
        match self {
            Self::Put { item, .. } => item_size(item),
            Self::Update { key, actions, .. } => {
                item_size(key) + actions.iter().map(UpdateAction::size).sum::<usize>()
            }
            Self::Delete { key, .. } | Self::ConditionCheck { key, .. } => item_size(key),
        }
    }
}

/// What every adapter refuses before looking at any item: no operation, more than 100, or
/// more than 4 MB together (DynamoDB's limits).
pub fn check_transaction_size(operations: &[TransactOp]) -> Result<(), TableError> {
    if operations.is_empty() || operations.len() > MAX_TRANSACTION_ITEMS {
        return Err(TableError::TransactionSize { count: operations.len() });
    }
    let size = operations.iter().map(TransactOp::size).sum();
    if size > MAX_TRANSACTION_BYTES {
        return Err(TableError::TransactionTooLarge { size });
    }
    Ok(())
}

/// Why a transaction item cancelled the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancellationReason {
    /// This item was fine.
    None,
    ConditionalCheckFailed,
    Validation(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("the conditional request failed")]
    ConditionFailed,
    #[error("transaction cancelled: {}", describe_reasons(reasons))]
    TransactionCanceled { reasons: Vec<CancellationReason> },
    /// `size` is unknown when the store refused an update's result without saying its size.
    #[error("item size {} exceeds the 400 KB limit", size.map_or_else(|| "after the update".to_owned(), |size| format!("{size} bytes")))]
    ItemTooLarge { size: Option<usize> },
    #[error("key attribute `{attribute}` is missing")]
    MissingKey { attribute: String },
    #[error("key attribute `{attribute}` must be of type {expected}, found {found}")]
    KeyType { attribute: String, expected: ValueType, found: ValueType },
    #[error("key attribute `{attribute}` must not be empty")]
    EmptyKey { attribute: String },
    #[error("key attribute `{attribute}` is {size} bytes, over the {limit}-byte limit")]
    KeyTooLarge { attribute: String, size: usize, limit: usize },
    #[error("`{attribute}` is not a key attribute of this table")]
    NotAKeyAttribute { attribute: String },
    #[error("key attribute `{attribute}` cannot be updated")]
    KeyUpdate { attribute: String },
    #[error("attribute `{attribute}` holds an empty set")]
    EmptySet { attribute: String },
    #[error("invalid update")]
    Update(#[from] UpdateError),
    #[error("invalid query: {problem}")]
    InvalidQuery { problem: String },
    #[error("invalid cursor: {problem}")]
    InvalidCursor { problem: String },
    #[error("table `{table}` has no index `{index}`")]
    UnknownIndex { table: String, index: String },
    #[error("a transaction holds 1 to {MAX_TRANSACTION_ITEMS} operations, got {count}")]
    TransactionSize { count: usize },
    #[error("a transaction's operations carry {size} bytes, over the 4 MB limit")]
    TransactionTooLarge { size: usize },
    #[error("a transaction cannot include more than one operation on the same item")]
    DuplicateTransactionItem,
    #[error("invalid table `{table}`: {problem}")]
    InvalidSpec { table: String, problem: String },
    #[error("table `{table}` already exists with a different key schema")]
    SchemaMismatch { table: String },
    /// The storage behind the table failed; the source is the adapter's own error (SQLite's,
    /// DynamoDB's), so no adapter needs a variant of its own.
    #[error("storage failure")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored item is corrupt")]
    Corrupt(#[source] serde_json::Error),
}

impl TableError {
    pub fn storage(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Storage(Box::new(source))
    }
}

impl TableError {
    /// True for errors caused by the request (a client error), false for storage failures.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::Corrupt(_))
    }
}

fn describe_reasons(reasons: &[CancellationReason]) -> String {
    let described: Vec<String> = reasons
        .iter()
        .enumerate()
        .filter_map(|(position, reason)| match reason {
            CancellationReason::None => None,
            CancellationReason::ConditionalCheckFailed => Some(format!("#{position}: condition failed")),
            CancellationReason::Validation(problem) => Some(format!("#{position}: {problem}")),
        })
        .collect();
    described.join(", ")
}
