//! Todos in the table, in a single-table design (see ARCHITECTURE.md):
//!
//! | item | `pk` | `sk` | index `by_position` (`pk`, `position`) | index `by_due` (`pk`, `due_at`) |
//! |---|---|---|---|---|
//! | todo | `USER#<sub>` | `TODO#<id>` (UUIDv7: creation order) | always | only with a due date |
//! | count | `USER#<sub>` | `COUNT` | — | — |
//!
//! One user's todos are one partition of the table and of each index, so every read names the
//! owner and no query can reach another user's items. The count item is written in the same
//! transaction as every creation and deletion, conditional on the limit, so the limit holds
//! under concurrent creations.

use std::sync::Arc;

use super::model::{Changes, Due, IdContext, Todo, TodoId};
use crate::infra::clock::Clock;
use crate::item;
use crate::ports::table::decode::{self, AttributeError};
use crate::ports::table::{
    AttributeValue, CancellationReason, Comparison, Condition, Cursor, IndexSpec, Item, KeyAttribute, Number,
    Query, SortCondition, Table, TableError, TableSpec, TransactOp, UpdateAction, item_size,
};

pub const TABLE: &str = "todos";
pub const BY_POSITION: &str = "by_position";
pub const BY_DUE: &str = "by_due";
const TODO_PREFIX: &str = "TODO#";
const COUNT_SK: &str = "COUNT";

/// The todos table's schema.
pub fn table_spec() -> TableSpec {
    TableSpec::new(TABLE, KeyAttribute::string("pk"))
        .sort_key(KeyAttribute::string("sk"))
        .index(
            IndexSpec::new(BY_POSITION, KeyAttribute::string("pk"))
                .sort_key(KeyAttribute::number("position")),
        )
        .index(IndexSpec::new(BY_DUE, KeyAttribute::string("pk")).sort_key(KeyAttribute::number("due_at")))
}

/// The user-pool `sub` a todo belongs to, taken from the caller's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn new(sub: impl Into<String>) -> Self {
        Self(sub.into())
    }

    pub fn sub(&self) -> &str {
        &self.0
    }

    fn partition(&self) -> String {
        format!("USER#{}", self.0)
    }
}

/// A user's limits (`[todos]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub todos_per_user: u64,
    pub item_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TodoError {
    #[error("no todo `{0}`")]
    NotFound(TodoId),
    #[error("todo `{id}` is at version {current}, not {expected}")]
    VersionMismatch { id: TodoId, expected: u64, current: u64 },
    #[error("you have {limit} todos, the most one user may keep; delete some first")]
    LimitReached { limit: u64 },
    #[error("the todo would take {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("`cursor` is not one this listing issued")]
    InvalidCursor,
    #[error("a stored todo is corrupt")]
    Corrupt(#[from] AttributeError),
    #[error("storage failure")]
    Table(#[from] TableError),
}

/// How a listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// The user's manual order.
    #[default]
    Position,
    /// Earliest due first; todos without a due date are not listed.
    Due,
    /// Oldest first.
    Created,
}

impl Sort {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "position" => Some(Self::Position),
            "due" => Some(Self::Due),
            "created" => Some(Self::Created),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Position => "position",
            Self::Due => "due",
            Self::Created => "created",
        }
    }
}

/// What a listing asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub done: Option<bool>,
    pub tag: Option<String>,
    /// Due at or after this instant.
    pub due_after: Option<Due>,
    /// Due strictly before this instant.
    pub due_before: Option<Due>,
    pub sort: Sort,
    pub descending: bool,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoPage {
    pub todos: Vec<Todo>,
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TodoStore {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    limits: StoreLimits,
    ids: Arc<IdContext>,
}

fn todo_key(owner: &Owner, id: &TodoId) -> Item {
    item! { "pk" => owner.partition(), "sk" => format!("{TODO_PREFIX}{id}") }
}

fn count_key(owner: &Owner) -> Item {
    item! { "pk" => owner.partition(), "sk" => COUNT_SK }
}

impl TodoStore {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>, limits: StoreLimits) -> Self {
        Self { table, clock, limits, ids: Arc::new(IdContext::new(uuid::ContextV7::new())) }
    }

    fn now(&self) -> (i64, String) {
        let now = self.clock.now();
        (self.clock.now_millis(), humantime::format_rfc3339_seconds(now).to_string())
    }

    pub async fn get(&self, owner: &Owner, id: &TodoId) -> Result<Option<Todo>, TodoError> {
        let item = self.table.get_shared(&todo_key(owner, id)).await?;
        Ok(item.map(|item| todo_from_item(&item)).transpose()?)
    }

    /// Creates a todo from `changes` (which hold a title); fails when the owner is at the limit.
    pub async fn create(&self, owner: &Owner, changes: Changes) -> Result<Todo, TodoError> {
        let (millis, now) = self.now();
        let mut todo = Todo {
            id: TodoId::new(millis, &self.ids),
            title: String::new(),
            notes: None,
            done: false,
            due: None,
            priority: 0,
            tags: Vec::new(),
            // New todos go last in the manual order unless they say otherwise.
            position: Number::from(millis),
            attachments: Vec::new(),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        todo.apply(changes);
        let item = self.checked_item(owner, &todo)?;
        let limit = self.limits.todos_per_user;
        let below_limit = Condition::Or(vec![
            Condition::not_exists("count"),
            Condition::compare("count", Comparison::Lt, limit),
        ]);
        let operations = vec![
            TransactOp::Put { item, condition: Some(Condition::not_exists("pk")) },
            TransactOp::Update {
                key: count_key(owner),
                actions: vec![UpdateAction::add("count", 1)],
                condition: Some(below_limit),
            },
        ];
        match self.table.transact_write(operations).await {
            Ok(()) => Ok(todo),
            Err(TableError::TransactionCanceled { reasons })
                if reasons.get(1) == Some(&CancellationReason::ConditionalCheckFailed) =>
            {
                Err(TodoError::LimitReached { limit })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Applies `changes` if the todo is still at `expected` (its ETag).
    pub async fn update(
        &self,
        owner: &Owner,
        id: &TodoId,
        expected: u64,
        changes: Changes,
    ) -> Result<Todo, TodoError> {
        // Read past the cache: the decision is the write's condition, but a stale read would
        // turn a client's current ETag into a 412.
        let key = todo_key(owner, id);
        let current =
            self.table.get_consistent(&key).await?.ok_or_else(|| TodoError::NotFound(id.clone()))?;
        let mut todo = todo_from_item(&current)?;
        if todo.version != expected {
            return Err(TodoError::VersionMismatch { id: id.clone(), expected, current: todo.version });
        }
        todo.apply(changes);
        todo.version += 1;
        todo.updated_at = self.now().1;
        let item = self.checked_item(owner, &todo)?;
        match self.table.put(item, Some(Condition::eq("version", expected))).await {
            Ok(_) => Ok(todo),
            Err(TableError::ConditionFailed) => Err(self.conflict(owner, id, expected).await),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a todo (if still at `expected`, when given).
    pub async fn delete(&self, owner: &Owner, id: &TodoId, expected: Option<u64>) -> Result<(), TodoError> {
        let mut condition = Condition::exists("pk");
        if let Some(version) = expected {
            condition = condition.and(Condition::eq("version", version));
        }
        let operations = vec![
            TransactOp::Delete { key: todo_key(owner, id), condition: Some(condition) },
            TransactOp::Update {
                key: count_key(owner),
                actions: vec![UpdateAction::add("count", -1)],
                condition: None,
            },
        ];
        match self.table.transact_write(operations).await {
            Ok(()) => Ok(()),
            Err(TableError::TransactionCanceled { .. }) => {
                Err(self.conflict(owner, id, expected.unwrap_or(0)).await)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Why a conditional write on a todo failed: it is gone, or at another version.
    async fn conflict(&self, owner: &Owner, id: &TodoId, expected: u64) -> TodoError {
        match self.table.get_consistent(&todo_key(owner, id)).await {
            Ok(None) => TodoError::NotFound(id.clone()),
            Ok(Some(item)) => match decode::number::<u64>(&item, "version") {
                Ok(current) => TodoError::VersionMismatch { id: id.clone(), expected, current },
                Err(error) => error.into(),
            },
            Err(error) => error.into(),
        }
    }

    /// How many todos the owner has.
    pub async fn count(&self, owner: &Owner) -> Result<u64, TodoError> {
        let item = self.table.get_consistent(&count_key(owner)).await?;
        Ok(item.map(|item| decode::number::<u64>(&item, "count")).transpose()?.unwrap_or(0))
    }

    /// A page of the owner's todos, filtered and sorted as asked. A filter applies after the
    /// table's limit, so the page is filled by reading on until it is full or the list ends.
    pub async fn list(&self, owner: &Owner, listing: &Listing) -> Result<TodoPage, TodoError> {
        let mut cursor = listing
            .cursor
            .as_deref()
            .map(|token| self.parse_cursor(owner, listing.sort, token))
            .transpose()?;
        let mut todos = Vec::with_capacity(listing.limit);
        loop {
            let mut query = match listing.sort {
                Sort::Position => Query::partition(owner.partition()).index(BY_POSITION),
                Sort::Due => Query::partition(owner.partition()).index(BY_DUE),
                Sort::Created => {
                    Query::partition(owner.partition()).sort(SortCondition::BeginsWith(TODO_PREFIX.into()))
                }
            }
            .limit(listing.limit - todos.len())
            .start_after(cursor.take());
            if listing.descending {
                query = query.backward();
            }
            if let Some(filter) = filter(listing) {
                query = query.filter(filter);
            }
            let page = self.table.query(query).await?;
            for item in &page.items {
                todos.push(todo_from_item(item)?);
            }
            match page.next {
                Some(next) if todos.len() < listing.limit => cursor = Some(next),
                next => {
                    let next = next.map(|next| format!("{}.{}", listing.sort.name(), next.to_token()));
                    return Ok(TodoPage { todos, next });
                }
            }
        }
    }

    /// A cursor this listing issued: the same order, the same owner.
    fn parse_cursor(&self, owner: &Owner, sort: Sort, token: &str) -> Result<Cursor, TodoError> {
        let (name, token) = token.split_once('.').ok_or(TodoError::InvalidCursor)?;
        let cursor = Cursor::from_token(token).map_err(|_| TodoError::InvalidCursor)?;
        let own = cursor.key().get("pk").and_then(AttributeValue::as_s) == Some(owner.partition().as_str());
        if name != sort.name() || !own {
            return Err(TodoError::InvalidCursor);
        }
        Ok(cursor)
    }

    fn checked_item(&self, owner: &Owner, todo: &Todo) -> Result<Item, TodoError> {
        let item = todo_item(owner, todo);
        let size = item_size(&item);
        if size > self.limits.item_bytes {
            return Err(TodoError::TooLarge { size, limit: self.limits.item_bytes });
        }
        Ok(item)
    }
}

/// What a change-stream record of the todos table says about a todo: its owner's `sub`, its
/// id, and the todo after the change (`None` when it was deleted). `None` for other items.
pub fn changed_todo(
    change: &crate::ports::table::change::TableChange,
) -> Option<(String, TodoId, Option<Todo>)> {
    let keys = &change.dynamodb.keys;
    let sub = keys.get("pk")?.as_s()?.strip_prefix("USER#")?.to_owned();
    let id = TodoId::parse(keys.get("sk")?.as_s()?.strip_prefix(TODO_PREFIX)?)?;
    let todo = change.dynamodb.new_image.as_ref().and_then(|item| todo_from_item(item).ok());
    Some((sub, id, todo))
}

fn filter(listing: &Listing) -> Option<Condition> {
    let mut conditions = Vec::new();
    if let Some(done) = listing.done {
        conditions.push(Condition::eq("done", done));
    }
    if let Some(tag) = &listing.tag {
        conditions.push(Condition::Contains("tags".into(), tag.as_str().into()));
    }
    if let Some(after) = &listing.due_after {
        conditions.push(Condition::compare("due_at", Comparison::Ge, after.millis));
    }
    if let Some(before) = &listing.due_before {
        conditions.push(Condition::compare("due_at", Comparison::Lt, before.millis));
    }
    match conditions.len() {
        0 => None,
        1 => conditions.pop(),
        _ => Some(Condition::And(conditions)),
    }
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|value| value.as_str().into()).collect())
}

fn todo_item(owner: &Owner, todo: &Todo) -> Item {
    let mut item = todo_key(owner, &todo.id);
    item.extend([
        ("id".to_owned(), todo.id.as_str().into()),
        ("title".to_owned(), todo.title.as_str().into()),
        ("done".to_owned(), todo.done.into()),
        ("priority".to_owned(), u64::from(todo.priority).into()),
        ("tags".to_owned(), strings(&todo.tags)),
        ("position".to_owned(), todo.position.clone().into()),
        ("attachments".to_owned(), strings(&todo.attachments)),
        ("version".to_owned(), todo.version.into()),
        ("created_at".to_owned(), todo.created_at.as_str().into()),
        ("updated_at".to_owned(), todo.updated_at.as_str().into()),
    ]);
    if let Some(notes) = &todo.notes {
        item.insert("notes".into(), notes.as_str().into());
    }
    if let Some(due) = &todo.due {
        item.insert("due".into(), due.text.as_str().into());
        item.insert("due_at".into(), due.millis.into());
    }
    item
}

fn todo_from_item(item: &Item) -> Result<Todo, AttributeError> {
    let id = decode::string(item, "id")?;
    let due = match (decode::optional_string(item, "due")?, decode::optional_number::<i64>(item, "due_at")?) {
        (Some(text), Some(millis)) => Some(Due { text, millis }),
        (None, None) => None,
        _ => return Err(AttributeError::Missing("due_at".into())),
    };
    let position = match item.get("position") {
        Some(AttributeValue::N(number)) => number.clone(),
        _ => return Err(AttributeError::Mistyped { name: "position".into(), expected: "a number" }),
    };
    Ok(Todo {
        id: TodoId::parse(&id).ok_or_else(|| AttributeError::invalid("id", id.clone(), "a todo id"))?,
        title: decode::string(item, "title")?,
        notes: decode::optional_string(item, "notes")?,
        done: decode::boolean(item, "done")?,
        due,
        priority: decode::number(item, "priority")?,
        tags: decode::strings(item, "tags")?,
        position,
        attachments: decode::strings(item, "attachments")?,
        version: decode::number(item, "version")?,
        created_at: decode::string(item, "created_at")?,
        updated_at: decode::string(item, "updated_at")?,
    })
}
