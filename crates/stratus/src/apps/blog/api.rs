//! `/v1/posts`: authors (members of the configured group) write; anyone reads what is
//! published. Edits carry the post's version as an ETag; `If-Match` makes a conflicting edit a
//! 412 instead of a lost update. Errors are RFC 9457 problem documents.

use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::store::{Post, PostError, PostStore};
use super::{PostInput, PostStatus, Slug, Tag};
use crate::apps::blog::BlogConfig;
use crate::infra::http::Problem;
use crate::infra::http::rest::{ApiJson, if_match_version, not_modified, version_etag, with_etag};
use crate::services::cognito::authorizer::{Authorizer, Principal};

/// What the posts API's handlers share. axum clones the state for every request, so it is one
/// reference-counted handle.
#[derive(Debug, Clone)]
pub struct BlogState(Arc<BlogContext>);

#[derive(Debug)]
pub struct BlogContext {
    pub posts: PostStore,
    pub authorizer: Arc<Authorizer>,
    pub config: BlogConfig,
}

impl BlogState {
    pub fn new(posts: PostStore, authorizer: Arc<Authorizer>, config: BlogConfig) -> Self {
        Self(Arc::new(BlogContext { posts, authorizer, config }))
    }
}

impl std::ops::Deref for BlogState {
    type Target = BlogContext;

    fn deref(&self) -> &BlogContext {
        &self.0
    }
}

impl FromRef<BlogState> for Arc<Authorizer> {
    fn from_ref(state: &BlogState) -> Self {
        Arc::clone(&state.authorizer)
    }
}

pub fn router(state: BlogState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/posts", get(list_posts).post(create_post))
        .route("/v1/posts/{slug}", get(get_post).put(replace_post).delete(delete_post))
        .route("/v1/posts/{slug}/publish", post(publish_post))
        .route("/v1/posts/{slug}/unpublish", post(unpublish_post))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

impl From<PostError> for Problem {
    fn from(error: PostError) -> Self {
        match &error {
            PostError::Invalid(_) | PostError::InvalidCursor => {
                Problem::new(StatusCode::BAD_REQUEST, error.to_string())
            }
            PostError::SlugTaken(_) => Problem::new(StatusCode::CONFLICT, error.to_string()),
            PostError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, error.to_string()),
            PostError::VersionMismatch { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, error.to_string())
            }
            PostError::Corrupt(_) | PostError::Table(_) => Problem::internal(&error),
        }
    }
}

fn parse_slug(text: &str) -> Result<Slug, Problem> {
    Slug::parse(text).map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))
}

fn etag(post: &Post) -> String {
    version_etag(post.version)
}

/// The version an `If-Match` header names; `Err` when it names none we could have issued.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    if_match_version(headers, "post")
}

fn post_response(status: StatusCode, post: &Post) -> Response {
    with_etag((status, Json(representation(post))).into_response(), &etag(post))
}

/// A post as the API answers it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Post)]
pub struct PostView {
    slug: String,
    title: String,
    summary: String,
    /// Markdown.
    body: String,
    tags: Vec<String>,
    cover: Option<String>,
    #[schema(format = DateTime)]
    publish_date: Option<String>,
    status: PostStatus,
    /// Also the ETag, `"v<version>"`.
    version: u64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn representation(post: &Post) -> PostView {
    PostView {
        slug: post.slug.to_string(),
        title: post.title.clone(),
        summary: post.summary.clone(),
        body: post.body.clone(),
        tags: post.tags.iter().map(ToString::to_string).collect(),
        cover: post.cover.clone(),
        publish_date: post.publish_date.clone(),
        status: post.status,
        version: post.version,
        created_at: post.created_at.clone(),
        updated_at: post.updated_at.clone(),
    }
}

/// A page of published posts, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PostPage {
    items: Vec<crate::apps::blog::store::PostSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParameters {
    /// Only posts with this tag.
    tag: Option<String>,
    /// Posts per page (the blog's page size by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/posts", tag = "posts", params(ListParameters),
    responses((status = 200, description = "Published posts, newest first", body = PostPage), (status = 400, description = "A parameter is invalid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn list_posts(
    State(state): State<BlogState>,
    parameters: Result<Query<ListParameters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(parameters) = parameters.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let tag = parameters
        .tag
        .as_deref()
        .map(Tag::parse)
        .transpose()
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let limit = parameters.limit.unwrap_or(state.config.page_size);
    if !(1..=100).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "`limit` must be between 1 and 100"));
    }
    let page = state.posts.list_published(tag.as_ref(), limit, parameters.cursor.as_deref()).await?;
    Ok(Json(PostPage { items: page.posts, next_cursor: page.next }).into_response())
}

#[utoipa::path(get, path = "/v1/posts/{slug}", tag = "posts", params(("slug" = String, Path, description = "The post's slug")),
    responses((status = 200, description = "The post (a draft only for authors)", body = PostView, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"), (status = 401, description = "A token that does not verify", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 404, description = "No such published post", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn get_post(
    State(state): State<BlogState>,
    principal: Option<Principal>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let slug = parse_slug(&slug)?;
    let is_author = principal.as_ref().is_some_and(|p| p.in_group(&state.config.authors_group));
    let post = state.posts.get(&slug).await?.filter(|post| post.status == PostStatus::Published || is_author);
    let post = post.ok_or_else(|| Problem::from(PostError::NotFound(slug)))?;
    if let Some(not_modified) = not_modified(&headers, &etag(&post)) {
        return Ok(not_modified);
    }
    Ok(post_response(StatusCode::OK, &post))
}

#[utoipa::path(post, path = "/v1/posts", tag = "posts", request_body = PostInput, security(("user_pool" = [])),
    responses((status = 201, description = "Created", body = PostView, headers(("ETag" = String), ("Location" = String))),
        (status = 400, description = "The post is invalid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 413, description = "The body is too large", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 415, description = "The body is not JSON", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn create_post(
    State(state): State<BlogState>,
    principal: Principal,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<Response, Problem> {
    principal.require_group(&state.config.authors_group)?;
    let slug_text =
        input.slug.clone().ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "`slug` is required"))?;
    let slug = Slug::parse(&slug_text).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let content = input.content().map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let status = input.status.unwrap_or(PostStatus::Draft);
    let post = state.posts.create(slug, content, status, &principal.sub).await?;
    tracing::info!(slug = %post.slug, author = %principal.sub, "post created");
    let mut response = post_response(StatusCode::CREATED, &post);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/posts/{}", post.slug)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(put, path = "/v1/posts/{slug}", tag = "posts", request_body = PostInput, security(("user_pool" = [])),
    params(("slug" = String, Path, description = "The post's slug"), ("If-Match" = String, Header, description = "The ETag of the version this edit is based on")),
    responses((status = 200, description = "The new version", body = PostView, headers(("ETag" = String))),
        (status = 400, description = "The post is invalid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 404, description = "No such post", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 412, description = "The post changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 413, description = "The body is too large", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 415, description = "The body is not JSON", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 428, description = "`If-Match` is required", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn replace_post(
    State(state): State<BlogState>,
    principal: Principal,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<Response, Problem> {
    principal.require_group(&state.config.authors_group)?;
    let slug = parse_slug(&slug)?;
    let expected = if_match(&headers)?.ok_or_else(|| {
        Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "Send If-Match with the post's ETag so concurrent edits are not lost",
        )
    })?;
    if input.slug.as_deref().is_some_and(|other| other != slug.as_str()) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "`slug` cannot be changed"));
    }
    let content = input.content().map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let status = input.status;
    let post = state
        .posts
        .replace(&slug, Some(expected), move |post| {
            post.title = content.title;
            post.body = content.body;
            post.summary = content.summary;
            post.tags = content.tags;
            post.cover = content.cover;
            if content.publish_date.is_some() {
                post.publish_date = content.publish_date;
            }
            if let Some(status) = status {
                post.status = status;
            }
        })
        .await?;
    tracing::info!(slug = %post.slug, version = post.version, "post updated");
    Ok(post_response(StatusCode::OK, &post))
}

async fn set_status(
    state: &BlogState,
    principal: &Principal,
    slug: &str,
    headers: &HeaderMap,
    status: PostStatus,
) -> Result<Response, Problem> {
    principal.require_group(&state.config.authors_group)?;
    let slug = parse_slug(slug)?;
    let expected = if_match(headers)?;
    let post = state.posts.replace(&slug, expected, |post| post.status = status).await?;
    tracing::info!(slug = %post.slug, status = status.as_str(), "post status changed");
    Ok(post_response(StatusCode::OK, &post))
}

#[utoipa::path(post, path = "/v1/posts/{slug}/publish", tag = "posts", security(("user_pool" = [])),
    params(("slug" = String, Path, description = "The post's slug"), ("If-Match" = Option<String>, Header, description = "Publish only this version")),
    responses((status = 200, description = "Published", body = PostView, headers(("ETag" = String))),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 404, description = "No such post", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 412, description = "The post changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn publish_post(
    State(state): State<BlogState>,
    principal: Principal,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_status(&state, &principal, &slug, &headers, PostStatus::Published).await
}

#[utoipa::path(post, path = "/v1/posts/{slug}/unpublish", tag = "posts", security(("user_pool" = [])),
    params(("slug" = String, Path, description = "The post's slug"), ("If-Match" = Option<String>, Header, description = "Unpublish only this version")),
    responses((status = 200, description = "A draft again", body = PostView, headers(("ETag" = String))),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 404, description = "No such post", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 412, description = "The post changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn unpublish_post(
    State(state): State<BlogState>,
    principal: Principal,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_status(&state, &principal, &slug, &headers, PostStatus::Draft).await
}

#[utoipa::path(delete, path = "/v1/posts/{slug}", tag = "posts", security(("user_pool" = [])),
    params(("slug" = String, Path, description = "The post's slug"), ("If-Match" = Option<String>, Header, description = "Delete only this version")),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 404, description = "No such post", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 412, description = "The post changed since that ETag", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn delete_post(
    State(state): State<BlogState>,
    principal: Principal,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    principal.require_group(&state.config.authors_group)?;
    let slug = parse_slug(&slug)?;
    state.posts.delete(&slug, if_match(&headers)?).await?;
    tracing::info!(slug = %slug, "post deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `/v1/posts` in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(list_posts, get_post, create_post, replace_post, publish_post, unpublish_post, delete_post),
    components(schemas(PostView, PostPage, PostInput, PostStatus, crate::apps::blog::store::PostSummary, crate::infra::http::ProblemSchema)),
    tags((name = "posts", description = "The blog's posts: anyone reads what is published; members of the authors group write."))
)]
pub struct PostsApi;
