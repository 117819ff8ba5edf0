//! The table port on DynamoDB. What the port promises and DynamoDB does not do by itself is
//! done here, each in one place:
//!
//! - **TTL.** DynamoDB deletes expired items only eventually (within days), while the port
//!   treats them as gone at once. Reads drop them; every condition is rewritten so that an
//!   expired item counts as absent; an update that finds one deletes it (as TTL would have)
//!   and retries, so it starts from nothing rather than from the expired attributes. Indexes
//!   store the TTL attribute beside their projection so their queries can drop expired items.
//! - **Validation.** Keys, item size, update actions, transaction limits and cursors are
//!   checked by the port's own functions before a request is sent, so both adapters refuse the
//!   same input with the same error; what only DynamoDB can see (an update's resulting size, an
//!   operand's type in the stored item) is mapped from its `ValidationException`.
//! - **One request per operation.** Writes return the old or new item with `ReturnValues`, and
//!   a failed condition returns the item it saw, instead of second reads.

mod expression;
mod schema;
mod values;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use stratus::infra::clock::{Clock, SystemClock};
use stratus::ports::table::{
    CancellationReason, Comparison, Condition, Cursor, Item, Page, Path, Projection, Query, SetValue, Table,
    TableError, TableSpec, TransactOp, UpdateAction, UpdateError,
};

pub use schema::{Shape, WhenMissing, shape_of_spec};

use expression::Placeholders;
use values::{SdkItem, item_from_sdk, item_to_sdk};

/// How often a write that met an expired, not yet deleted item deletes it and tries again
/// before it gives up (another writer would have to recreate expired items in between).
const EXPIRED_RETRIES: usize = 3;

/// A [`Table`] stored in one DynamoDB table (a global table on AWS).
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    spec: TableSpec,
    /// The DynamoDB table's name; the spec's name is the port's logical one.
    table_name: String,
    clock: Arc<dyn Clock>,
}

impl DynamoTable {
    /// The table `table_name`, checked to have `spec`'s key schema (or created, if asked).
    pub async fn open(
        client: Client,
        spec: TableSpec,
        table_name: impl Into<String>,
        when_missing: WhenMissing,
    ) -> Result<Self, TableError> {
        spec.validate()?;
        let table_name = table_name.into();
        schema::ensure(&client, &table_name, &spec, when_missing).await?;
        Ok(Self { client, spec, table_name, clock: Arc::new(SystemClock) })
    }

    /// Judges expiry by `clock` instead of the system's.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_seconds(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    fn is_expired(&self, item: &Item) -> bool {
        self.spec.expiry_of(item).is_some_and(|expiry| expiry <= self.now_seconds())
    }

    /// `ttl <= now`: true only for a number attribute (DynamoDB compares no other type with a
    /// number), which is exactly when the port counts an item as expired.
    fn expired(&self) -> Option<Condition> {
        let attribute = self.spec.ttl_attribute.as_ref()?;
        Some(Condition::compare(Path::attr(attribute.clone()), Comparison::Le, self.now_seconds()))
    }

    /// `condition` as the port means it, where an expired item is absent: when the condition
    /// holds for a missing item, an expired one passes too; otherwise it must not be expired.
    fn as_if_expired_were_absent(&self, condition: Condition) -> Condition {
        let Some(expired) = self.expired() else { return condition };
        if condition.evaluate(None) {
            Condition::Or(vec![condition, expired])
        } else {
            condition.and(Condition::Not(Box::new(expired)))
        }
    }

    /// An update's condition: the caller's, and the item not expired (an expired one is
    /// deleted and the update retried, so it never builds on expired attributes).
    fn update_condition(&self, condition: Option<Condition>) -> Option<Condition> {
        let live = self.expired().map(|expired| Condition::Not(Box::new(expired)));
        match (condition, live) {
            (Some(condition), Some(live)) => Some(condition.and(live)),
            (one, other) => one.or(other),
        }
    }

    /// Deletes an expired item as DynamoDB's TTL eventually would, unless it changed since.
    async fn delete_expired(&self, key: &Item, expired: &Item) -> Result<(), TableError> {
        let Some(attribute) = &self.spec.ttl_attribute else { return Ok(()) };
        let Some(expiry) = expired.get(attribute) else { return Ok(()) };
        let mut placeholders = Placeholders::default();
        let condition = placeholders.condition(&Condition::eq(Path::attr(attribute.clone()), expiry.clone()));
        let (names, values) = placeholders.into_maps();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .set_key(Some(item_to_sdk(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(error) => Err(TableError::storage(error)),
        }
    }

    /// A returned item, unless there is none or it has expired.
    fn live(&self, item: Option<SdkItem>) -> Result<Option<Item>, TableError> {
        let item = item.filter(|item| !item.is_empty()).map(item_from_sdk).transpose()?;
        Ok(item.filter(|item| !self.is_expired(item)))
    }

    /// The TTL attribute, when an index stores it only so that its queries can drop expired
    /// items: removed from what the query returns.
    fn hidden_attribute(&self, index: Option<&str>) -> Option<&str> {
        let ttl = self.spec.ttl_attribute.as_deref()?;
        let index = self.spec.find_index(index?).ok()?;
        let declared = match &index.projection {
            Projection::All => true,
            Projection::KeysOnly => false,
            Projection::Include(names) => names.iter().any(|name| name == ttl),
        };
        let is_key = self.spec.is_key_attribute(ttl)
            || index.partition_key.name == ttl
            || index.sort_key.as_ref().is_some_and(|sort| sort.name == ttl);
        (!declared && !is_key).then_some(ttl)
    }

    fn key_of_operation(&self, operation: &TransactOp) -> Result<Item, TableError> {
        match operation {
            TransactOp::Put { item, .. } => {
                self.spec.validate_item(item)?;
                self.spec.key_of(item)
            }
            TransactOp::Update { key, actions, .. } => {
                self.spec.validate_key(key)?;
                self.spec.validate_actions(actions)?;
                Ok(key.clone())
            }
            TransactOp::Delete { key, .. } | TransactOp::ConditionCheck { key, .. } => {
                self.spec.validate_key(key)?;
                Ok(key.clone())
            }
        }
    }

    fn transact_item(&self, operation: &TransactOp) -> Result<TransactWriteItem, TableError> {
        // What each write is sent with: conditions that treat an expired item as absent, and
        // for an update, the condition that it is not expired (see `update_condition`).
        let condition = match operation {
            TransactOp::Put { condition, .. } | TransactOp::Delete { condition, .. } => {
                condition.clone().map(|c| self.as_if_expired_were_absent(c))
            }
            TransactOp::Update { condition, .. } => self.update_condition(condition.clone()),
            TransactOp::ConditionCheck { condition, .. } => {
                Some(self.as_if_expired_were_absent(condition.clone()))
            }
        };
        let mut placeholders = Placeholders::default();
        // A transaction's update needs an expression, even one that only creates the item.
        let update = match operation {
            TransactOp::Update { actions, .. } => {
                Some(placeholders.update(actions).unwrap_or_else(|| placeholders.no_op_update()))
            }
            _ => None,
        };
        let condition = condition.map(|c| placeholders.condition(&c));
        let (names, values) = placeholders.into_maps();
        // The settings the four builders share (they are distinct types without a common trait).
        macro_rules! expressions {
            ($builder:expr) => {
                $builder
                    .table_name(&self.table_name)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            };
        }
        let item = TransactWriteItem::builder();
        let item = match operation {
            TransactOp::Put { item: written, .. } => item.put(
                expressions!(Put::builder())
                    .set_item(Some(item_to_sdk(written)))
                    .build()
                    .map_err(TableError::storage)?,
            ),
            TransactOp::Update { key, .. } => item.update(
                expressions!(Update::builder())
                    .set_key(Some(item_to_sdk(key)))
                    .set_update_expression(update)
                    .build()
                    .map_err(TableError::storage)?,
            ),
            TransactOp::Delete { key, .. } => item.delete(
                expressions!(Delete::builder())
                    .set_key(Some(item_to_sdk(key)))
                    .build()
                    .map_err(TableError::storage)?,
            ),
            TransactOp::ConditionCheck { key, .. } => {
                let check = expressions!(ConditionCheck::builder()).set_key(Some(item_to_sdk(key)));
                item.condition_check(check.build().map_err(TableError::storage)?)
            }
        };
        Ok(item.build())
    }
}

#[async_trait]
impl Table for DynamoTable {
    fn spec(&self) -> &TableSpec {
        &self.spec
    }

    async fn get(&self, key: &Item) -> Result<Option<Item>, TableError> {
        self.read(key, false).await
    }

    async fn get_consistent(&self, key: &Item) -> Result<Option<Item>, TableError> {
        self.read(key, true).await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.spec.validate_item(&item)?;
        let mut placeholders = Placeholders::default();
        let condition = condition.map(|c| placeholders.condition(&self.as_if_expired_were_absent(c)));
        let (names, values) = placeholders.into_maps();
        let output = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item_to_sdk(&item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|error| write_error(error, &[]))?;
        self.live(output.attributes)
    }

    async fn update(
        &self,
        key: &Item,
        actions: &[UpdateAction],
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.spec.validate_key(key)?;
        self.spec.validate_actions(actions)?;
        for _ in 0..EXPIRED_RETRIES {
            let mut placeholders = Placeholders::default();
            let update = placeholders.update(actions);
            let condition = self.update_condition(condition.clone()).map(|c| placeholders.condition(&c));
            let (names, values) = placeholders.into_maps();
            let result = self
                .client
                .update_item()
                .table_name(&self.table_name)
                .set_key(Some(item_to_sdk(key)))
                .set_update_expression(update)
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(output) => return item_from_sdk(output.attributes.unwrap_or_default()),
                Err(error) => {
                    let found = match error.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(failure)) => {
                            item_from_sdk(failure.item.clone().unwrap_or_default())?
                        }
                        _ => return Err(write_error(error, actions)),
                    };
                    if !self.is_expired(&found) {
                        return Err(TableError::ConditionFailed);
                    }
                    self.delete_expired(key, &found).await?;
                }
            }
        }
        Err(TableError::ConditionFailed)
    }

    async fn delete(&self, key: &Item, condition: Option<Condition>) -> Result<Option<Item>, TableError> {
        self.spec.validate_key(key)?;
        let mut placeholders = Placeholders::default();
        let condition = condition.map(|c| placeholders.condition(&self.as_if_expired_were_absent(c)));
        let (names, values) = placeholders.into_maps();
        let output = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .set_key(Some(item_to_sdk(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|error| write_error(error, &[]))?;
        self.live(output.attributes)
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        query.validate(&self.spec)?;
        if let Some(cursor) = &query.start_after {
            self.spec.check_cursor(&query, cursor)?;
        }
        let (partition_key, sort_key) = match &query.index {
            None => (&self.spec.partition_key, self.spec.sort_key.as_ref()),
            Some(name) => {
                let index = self.spec.find_index(name)?;
                (&index.partition_key, index.sort_key.as_ref())
            }
        };
        let mut placeholders = Placeholders::default();
        let sort = sort_key.zip(query.sort.as_ref()).map(|(key, condition)| (key.name.as_str(), condition));
        let key_condition = placeholders.key_condition(&partition_key.name, &query.partition, sort);
        let filter = query.filter.as_ref().map(|filter| placeholders.condition(filter));
        let (names, values) = placeholders.into_maps();
        let output = self
            .client
            .query()
            .table_name(&self.table_name)
            .set_index_name(query.index.clone())
            .key_condition_expression(key_condition)
            .set_filter_expression(filter)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .scan_index_forward(query.forward)
            .set_limit(query.limit.map(|limit| i32::try_from(limit).unwrap_or(i32::MAX)))
            .set_exclusive_start_key(query.start_after.as_ref().map(|cursor| item_to_sdk(cursor.key())))
            // Indexes of a DynamoDB table are read eventually consistent only.
            .consistent_read(query.consistent && query.index.is_none())
            .send()
            .await
            .map_err(TableError::storage)?;
        let hidden = self.hidden_attribute(query.index.as_deref());
        let mut items = Vec::with_capacity(output.items().len());
        for item in output.items.unwrap_or_default() {
            let Some(mut item) = self.live(Some(item))? else { continue };
            if let Some(hidden) = hidden {
                item.remove(hidden);
            }
            items.push(item);
        }
        let next = self.live_key(output.last_evaluated_key)?.map(Cursor);
        Ok(Page { items, next })
    }

    async fn transact_write(&self, operations: Vec<TransactOp>) -> Result<(), TableError> {
        stratus::ports::table::check_transaction_size(&operations)?;
        let mut keys: Vec<Item> = Vec::with_capacity(operations.len());
        for operation in &operations {
            let key = self.key_of_operation(operation)?;
            if keys.contains(&key) {
                return Err(TableError::DuplicateTransactionItem);
            }
            keys.push(key);
        }
        let mut reasons = Vec::new();
        for _ in 0..EXPIRED_RETRIES {
            let items =
                operations.iter().map(|operation| self.transact_item(operation)).collect::<Result<_, _>>()?;
            let error = match self.client.transact_write_items().set_transact_items(Some(items)).send().await
            {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            reasons = match error.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    cancelled.cancellation_reasons
                }
                other => return Err(TableError::storage(other)),
            }
            .unwrap_or_default();
            // An update that met an expired item: delete it, as TTL would have, and try again.
            let mut expired = Vec::new();
            for ((operation, key), reason) in operations.iter().zip(&keys).zip(&reasons) {
                let found = reason.item.clone().map(item_from_sdk).transpose()?;
                if let (TransactOp::Update { .. }, Some(found)) = (operation, found)
                    && self.is_expired(&found)
                {
                    expired.push((key, found));
                }
            }
            if expired.is_empty() {
                return Err(cancelled(&reasons));
            }
            for (key, found) in expired {
                self.delete_expired(key, &found).await?;
            }
        }
        // Expired items kept reappearing (recreated by another writer each time).
        Err(cancelled(&reasons))
    }
}

impl DynamoTable {
    async fn read(&self, key: &Item, consistent: bool) -> Result<Option<Item>, TableError> {
        self.spec.validate_key(key)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(item_to_sdk(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(TableError::storage)?;
        self.live(output.item)
    }

    fn live_key(&self, key: Option<SdkItem>) -> Result<Option<Item>, TableError> {
        key.filter(|key| !key.is_empty()).map(item_from_sdk).transpose()
    }
}

/// A write's error in the port's terms: a failed condition, or what DynamoDB's validation saw
/// that the port's own checks could not (the stored item's size or types).
fn write_error<E, R>(error: SdkError<E, R>, actions: &[UpdateAction]) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.code() {
        Some("ConditionalCheckFailedException") => TableError::ConditionFailed,
        Some("ValidationException") => {
            let message = error.message().unwrap_or_default().to_owned();
            validation_error(&message, actions).unwrap_or_else(|| TableError::storage(error))
        }
        _ => TableError::storage(error),
    }
}

/// DynamoDB's validation messages for what depends on the stored item.
fn validation_error(message: &str, actions: &[UpdateAction]) -> Option<TableError> {
    if message.contains("Item size") && message.contains("exceeded the maximum allowed size") {
        return Some(TableError::ItemTooLarge { size: None });
    }
    let problem = if message.contains("refers to an attribute that does not exist") {
        "must be an existing number for arithmetic"
    } else if message.contains("incorrect data type") {
        "has the wrong type for this update"
    } else {
        return None;
    };
    Some(TableError::Update(UpdateError::WrongOperand { path: operand_paths(actions), problem }))
}

/// The paths of the actions whose operands depend on the stored item: the ones DynamoDB's
/// operand errors are about (it does not say which).
fn operand_paths(actions: &[UpdateAction]) -> String {
    let depends = |action: &&UpdateAction| {
        matches!(
            action,
            UpdateAction::Add(..)
                | UpdateAction::Delete(..)
                | UpdateAction::Set(
                    _,
                    SetValue::Increment(_) | SetValue::Decrement(_) | SetValue::ListAppend(_)
                )
        )
    };
    let paths: Vec<String> = actions.iter().filter(depends).map(|action| action.path().to_string()).collect();
    paths.join(", ")
}

/// A cancelled transaction's reasons in the port's terms. Reasons that are not about the
/// request (a conflict with another transaction, throttling) make it a storage failure.
fn cancelled(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> TableError {
    let mut mapped = Vec::with_capacity(reasons.len());
    for reason in reasons {
        let message = reason.message().unwrap_or_default();
        mapped.push(match reason.code().unwrap_or("None") {
            "None" => CancellationReason::None,
            "ConditionalCheckFailed" => CancellationReason::ConditionalCheckFailed,
            "ValidationError" => CancellationReason::Validation(
                validation_error(message, &[]).map_or_else(|| message.to_owned(), |error| error.to_string()),
            ),
            other => return TableError::storage(TransactionFailed(format!("{other}: {message}"))),
        });
    }
    TableError::TransactionCanceled { reasons: mapped }
}

/// A transaction DynamoDB cancelled for a reason that is not the request's fault.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB cancelled the transaction: {0}")]
struct TransactionFailed(String);
