//! `/v1/todos`: each user-pool user's own todos. The owner is the access token's `sub`; another
//! user's todo answers exactly as one that does not exist (404). Edits carry the version as an
//! ETag: `PATCH` requires `If-Match` (428 without, 412 when stale). A body is checked whole
//! before anything is written, and every violation is listed with its JSON pointer.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use object_store::{ObjectStore, ObjectStoreExt as _};
use serde_json::Value;

use super::TodosConfig;
use super::model::{Changes, Due, Limits, Mode, Todo, TodoId, TodoView};
use super::store::{Listing, Owner, Sort, TodoError, TodoStore};
use crate::infra::http::rest::{ApiJson, if_match_version, not_modified, version_etag, with_etag};
use crate::infra::http::{Problem, Violation};
use crate::services::cognito::authorizer::{Authorizer, Principal};

/// Where a user's own files are: the folders (`<identity id>/`) of their identities in the
/// attachments bucket. Locally the identity pools know; on AWS, Cognito's identity pool.
#[async_trait]
pub trait Folders: Send + Sync + std::fmt::Debug {
    async fn of(&self, sub: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
}

#[derive(Debug, Clone)]
pub struct TodosState(Arc<TodosContext>);

#[derive(Debug)]
pub struct TodosContext {
    pub todos: TodoStore,
    pub authorizer: Arc<Authorizer>,
    pub folders: Arc<dyn Folders>,
    /// The attachments bucket.
    pub files: Arc<dyn ObjectStore>,
    pub config: TodosConfig,
}

impl TodosState {
    pub fn new(context: TodosContext) -> Self {
        Self(Arc::new(context))
    }
}

impl std::ops::Deref for TodosState {
    type Target = TodosContext;

    fn deref(&self) -> &TodosContext {
        &self.0
    }
}

impl FromRef<TodosState> for Arc<Authorizer> {
    fn from_ref(state: &TodosState) -> Self {
        Arc::clone(&state.authorizer)
    }
}

pub fn router(state: TodosState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/todos", get(list_todos).post(create_todo))
        .route("/v1/todos/{id}", get(get_todo).patch(patch_todo).delete(delete_todo))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A page of todos.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TodoPage {
    pub items: Vec<TodoView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A tag: a word or phrase, without surrounding spaces.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code, reason = "a schema only")]
struct Tag(String);

impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .pattern(Some(r"^\S(.*\S)?$"))
            .description(Some("A word or phrase, without surrounding spaces."))
            .into()
    }
}

impl utoipa::ToSchema for Tag {}

/// What creating a todo takes. (Requests are read by `model::Changes`, which lists every
/// violation; these types are the document's account of it, and the gateway validates with it.)
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a schema only")]
pub struct NewTodo {
    #[schema(min_length = 1)]
    title: String,
    /// Markdown.
    notes: Option<String>,
    done: Option<bool>,
    /// RFC 3339, e.g. `2026-12-24T18:00:00+01:00`.
    #[schema(format = DateTime)]
    due: Option<String>,
    #[schema(minimum = 0, maximum = 3)]
    priority: Option<u8>,
    tags: Option<Vec<Tag>>,
    position: Option<f64>,
    /// Keys in your own folder (`<identity id>/…`) of the user bucket.
    attachments: Option<Vec<String>>,
}

/// A JSON merge patch of a todo: the fields to change; `null` clears `notes` and `due`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a schema only")]
pub struct TodoPatch {
    #[schema(min_length = 1, nullable = false)]
    title: Option<String>,
    notes: Option<String>,
    #[schema(nullable = false)]
    done: Option<bool>,
    #[schema(format = DateTime)]
    due: Option<String>,
    #[schema(minimum = 0, maximum = 3, nullable = false)]
    priority: Option<u8>,
    #[schema(nullable = false)]
    tags: Option<Vec<Tag>>,
    #[schema(nullable = false)]
    position: Option<f64>,
    #[schema(nullable = false)]
    attachments: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "a schema only")]
enum SortBy {
    Position,
    Due,
    Created,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "a schema only")]
enum Order {
    Asc,
    Desc,
}

/// A listing's parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only: `listing` reads the query")]
struct ListParameters {
    /// Only finished (`true`) or open (`false`) todos.
    done: Option<bool>,
    /// Only todos with this tag.
    #[param(min_length = 1)]
    tag: Option<String>,
    /// Due at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    due_after: Option<String>,
    /// Due before this instant (RFC 3339).
    #[param(format = DateTime)]
    due_before: Option<String>,
    /// `position` (the default), `due` (only todos with a due date) or `created`.
    sort: Option<SortBy>,
    order: Option<Order>,
    /// Todos per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u8>,
    /// The previous page's `next_cursor`.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// `/v1/todos` in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_todos, create_todo, get_todo, patch_todo, delete_todo),
    components(schemas(TodoView, TodoPage, NewTodo, TodoPatch, Tag, SortBy, Order, crate::infra::http::ProblemSchema)),
    tags((name = "todos", description = "Each user's own todos (the user pool's access token; the owner is its `sub`)."))
)]
#[derive(Debug)]
pub struct TodosApi;

impl From<TodoError> for Problem {
    fn from(error: TodoError) -> Self {
        match &error {
            TodoError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, error.to_string()),
            TodoError::VersionMismatch { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, error.to_string())
            }
            TodoError::LimitReached { .. } => Problem::new(StatusCode::CONFLICT, error.to_string()),
            TodoError::TooLarge { .. } => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
            TodoError::InvalidCursor => Problem::invalid(vec![Violation::new("?cursor", error.to_string())]),
            TodoError::Corrupt(_) | TodoError::Table(_) => Problem::internal(&error),
        }
    }
}

fn owner(principal: &Principal) -> Owner {
    Owner::new(principal.sub.clone())
}

/// An id from the path; one this API could not have issued is as absent as a deleted one.
fn todo_id(text: &str) -> Result<TodoId, Problem> {
    TodoId::parse(text).ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no todo `{text}`")))
}

fn todo_response(status: StatusCode, todo: &Todo) -> Response {
    per_caller(with_etag((status, Json(todo.view())).into_response(), &version_etag(todo.version)))
}

/// A response that differs by caller. The gateway's cache keys it by caller; a shared cache
/// between the client and Stratus does not keep answers to requests with `Authorization`
/// anyway, and `Vary` says so to any other.
fn per_caller(mut response: Response) -> Response {
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Authorization"));
    response
}

impl TodosState {
    fn limits(&self) -> Limits {
        self.config.limits()
    }

    /// Reads a body, then checks the attachments it names: each in one of the caller's
    /// folders and there. Every problem is reported at once.
    async fn changes(&self, principal: &Principal, body: &Value, mode: Mode) -> Result<Changes, Problem> {
        let changes = Changes::parse(body, mode, &self.limits()).map_err(Problem::invalid)?;
        let Some(keys) = &changes.attachments else { return Ok(changes) };
        if keys.is_empty() {
            return Ok(changes);
        }
        let folders =
            self.folders.of(&principal.sub).await.map_err(|error| Problem::internal(error.as_ref()))?;
        let mut violations = Vec::new();
        for (position, key) in keys.iter().enumerate() {
            let pointer = format!("/attachments/{position}");
            if let Err(error) = crate::ports::blobs::parse_key(key) {
                violations.push(Violation::new(pointer, error.to_string()));
                continue;
            }
            let own = folders
                .iter()
                .any(|folder| key.strip_prefix(folder.as_str()).is_some_and(|rest| rest.starts_with('/')));
            if !own {
                let hint = match folders.first() {
                    Some(folder) => format!("attachments must be in your own folder, `{folder}/`"),
                    None => "you have no folder yet: get an identity from the identity pool first".to_owned(),
                };
                violations.push(Violation::new(pointer, hint));
                continue;
            }
            let path = object_store::path::Path::from(key.as_str());
            match self.files.head(&path).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    violations.push(Violation::new(
                        pointer,
                        format!("there is no object `{key}`; upload it first"),
                    ));
                }
                Err(error) => return Err(Problem::internal(&error)),
            }
        }
        if violations.is_empty() { Ok(changes) } else { Err(Problem::invalid(violations)) }
    }
}

/// The query of a listing, every parameter checked.
fn listing(query: Option<&str>, page_size: usize) -> Result<Listing, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| Problem::invalid(vec![Violation::new("?", "the query string is not URL-encoded")]))?;
    let mut listing = Listing { limit: page_size, ..Listing::default() };
    let mut violations = Vec::new();
    for (name, value) in pairs {
        let mut refuse = |detail: String| violations.push(Violation::new(format!("?{name}"), detail));
        match name.as_str() {
            "done" => match value.as_str() {
                "true" => listing.done = Some(true),
                "false" => listing.done = Some(false),
                _ => refuse("must be true or false".into()),
            },
            "tag" if !value.is_empty() => listing.tag = Some(value),
            "due_after" => match Due::parse(&value) {
                Ok(due) => listing.due_after = Some(due),
                Err(problem) => refuse(problem),
            },
            "due_before" => match Due::parse(&value) {
                Ok(due) => listing.due_before = Some(due),
                Err(problem) => refuse(problem),
            },
            "sort" => match Sort::parse(&value) {
                Some(sort) => listing.sort = sort,
                None => refuse("must be position, due or created".into()),
            },
            "order" => match value.as_str() {
                "asc" => listing.descending = false,
                "desc" => listing.descending = true,
                _ => refuse("must be asc or desc".into()),
            },
            "limit" => match value.parse::<usize>() {
                Ok(limit @ 1..=100) => listing.limit = limit,
                _ => refuse("must be a whole number from 1 to 100".into()),
            },
            "cursor" if !value.is_empty() => listing.cursor = Some(value),
            "tag" | "cursor" => refuse("must not be empty".into()),
            _ => refuse("unknown parameter; a listing takes done, tag, due_after, due_before, sort, order, limit, cursor".into()),
        }
    }
    if violations.is_empty() { Ok(listing) } else { Err(Problem::invalid(violations)) }
}

#[utoipa::path(get, path = "/v1/todos", tag = "todos", params(ListParameters),
    security(("user_pool" = [])),
    responses(
        (status = 200, description = "A page of the caller's todos", body = TodoPage),
        (status = 400, description = "A parameter is invalid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
    ))]
async fn list_todos(
    State(state): State<TodosState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let listing = listing(query.as_deref(), state.config.page_size)?;
    let page = state.todos.list(&owner(&principal), &listing).await?;
    let items = page.todos.iter().map(Todo::view).collect();
    Ok(per_caller(Json(TodoPage { items, next_cursor: page.next }).into_response()))
}

#[utoipa::path(get, path = "/v1/todos/{id}", tag = "todos",
    params(("id" = String, Path, description = "The todo's id")),
    security(("user_pool" = [])),
    responses(
        (status = 200, description = "The todo; its ETag is its version", body = TodoView, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such todo of the caller's", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
    ))]
async fn get_todo(
    State(state): State<TodosState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = todo_id(&id)?;
    let todo = state.todos.get(&owner(&principal), &id).await?.ok_or(TodoError::NotFound(id))?;
    if let Some(not_modified) = not_modified(&headers, &version_etag(todo.version)) {
        return Ok(not_modified);
    }
    Ok(todo_response(StatusCode::OK, &todo))
}

#[utoipa::path(post, path = "/v1/todos", tag = "todos", request_body = NewTodo,
    security(("user_pool" = [])),
    responses(
        (status = 201, description = "Created", body = TodoView, headers(("ETag" = String), ("Location" = String))),
        (status = 400, description = "Every violation, with its JSON pointer", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 409, description = "The caller has as many todos as one may keep", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "The body or the todo is too large", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
    ))]
async fn create_todo(
    State(state): State<TodosState>,
    principal: Principal,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    let changes = state.changes(&principal, &body, Mode::Create).await?;
    let todo = state.todos.create(&owner(&principal), changes).await?;
    tracing::info!(id = %todo.id, owner = %principal.sub, "todo created");
    let mut response = todo_response(StatusCode::CREATED, &todo);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/todos/{}", todo.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(patch, path = "/v1/todos/{id}", tag = "todos", request_body(content = TodoPatch, content_type = "application/merge-patch+json"),
    params(("id" = String, Path, description = "The todo's id"),
        ("If-Match" = String, Header, description = "The ETag of the version this edit is based on")),
    security(("user_pool" = [])),
    responses(
        (status = 200, description = "The edited todo", body = TodoView, headers(("ETag" = String))),
        (status = 400, description = "Every violation, with its JSON pointer", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such todo of the caller's", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 412, description = "The todo changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "The body or the todo is too large", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 428, description = "`If-Match` is required", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
    ))]
async fn patch_todo(
    State(state): State<TodosState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    let id = todo_id(&id)?;
    let expected = if_match_version(&headers, "todo")?.ok_or_else(|| {
        Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "Send If-Match with the todo's ETag so concurrent edits are not lost",
        )
    })?;
    let changes = state.changes(&principal, &body, Mode::Patch).await?;
    let todo = state.todos.update(&owner(&principal), &id, expected, changes).await?;
    tracing::info!(id = %todo.id, version = todo.version, "todo updated");
    Ok(todo_response(StatusCode::OK, &todo))
}

#[utoipa::path(delete, path = "/v1/todos/{id}", tag = "todos",
    params(("id" = String, Path, description = "The todo's id"),
        ("If-Match" = Option<String>, Header, description = "Delete only this version")),
    security(("user_pool" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such todo of the caller's", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 412, description = "The todo changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
    ))]
async fn delete_todo(
    State(state): State<TodosState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = todo_id(&id)?;
    let expected = if_match_version(&headers, "todo")?;
    state.todos.delete(&owner(&principal), &id, expected).await?;
    tracing::info!(id = %id, "todo deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
