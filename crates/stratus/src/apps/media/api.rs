//! `/v1/photos`: authors upload photos (multipart, streamed into the media bucket, size-limited);
//! anyone reads a photo's state, dimensions and thumbnails.

use std::sync::Arc;

use axum::extract::{FromRef, Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use super::photos::{Photo, PhotoError};
use super::{Media, UploadError};
use crate::apps::media::MediaConfig;
use crate::infra::http::Problem;
use crate::infra::http::body::{BodyLimit, BodyRefusal, limit_streamed_body};
use crate::services::cognito::authorizer::{Authorizer, Principal};

/// Room for multipart boundaries and part headers beyond the file itself.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct PhotoState(Arc<PhotoContext>);

#[derive(Debug)]
pub struct PhotoContext {
    pub media: Media,
    pub authorizer: Arc<Authorizer>,
    pub config: MediaConfig,
    pub authors_group: String,
    /// Where presigned upload URLs point.
    pub public_url: String,
}

impl PhotoState {
    pub fn new(context: PhotoContext) -> Self {
        Self(Arc::new(context))
    }
}

impl FromRef<PhotoState> for Arc<Authorizer> {
    fn from_ref(state: &PhotoState) -> Self {
        Arc::clone(&state.0.authorizer)
    }
}

/// The photo functions: a photo's state, and URLs for direct uploads.
pub fn functions(state: PhotoState) -> Router {
    Router::new()
        .route("/v1/photos/uploads", post(presign))
        .route("/v1/photos/{id}", get(show))
        .with_state(state)
}

/// The uploads themselves stream into the media bucket, as a `PUT` to S3 does on AWS (where
/// Lambda's 6 MB payload limit rules out a function): they take no function slot, and the body
/// pace and `media.max_upload_bytes` bound them.
pub fn uploads(state: PhotoState) -> Router {
    let max = state.0.config.max_upload_bytes;
    let limit = |max_bytes| BodyLimit::new(max_bytes, Problem::body_refused);
    let multipart = Router::new()
        .route("/v1/photos", post(upload))
        .layer(axum::middleware::from_fn_with_state(limit(max + MULTIPART_OVERHEAD), limit_streamed_body));
    let direct = Router::new()
        .route("/v1/photos/uploads/{id}", put(upload_presigned).layer(direct_upload_cors()))
        .layer(axum::middleware::from_fn_with_state(limit(max), limit_streamed_body));
    multipart
        .merge(direct)
        // `limit_streamed_body` bounds the body; the multipart extractor's own limit would be
        // a second one.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Presigned URLs exist for direct uploads from browsers on other origins; the token in the
/// URL is the only credential.
fn direct_upload_cors() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::PUT])
        .allow_headers([header::CONTENT_TYPE])
}

impl From<PhotoError> for Problem {
    fn from(error: PhotoError) -> Self {
        Problem::internal(&error)
    }
}

fn too_large(limit: usize) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("photos are limited to {limit} bytes"))
}

fn multipart_problem(error: &axum::extract::multipart::MultipartError, limit: usize) -> Problem {
    match BodyRefusal::of(error, limit) {
        BodyRefusal::TooSlow => Problem::from(BodyRefusal::TooSlow),
        _ if error.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(limit),
        _ => Problem::new(StatusCode::BAD_REQUEST, error.body_text()),
    }
}

/// Streams the first file part into the media bucket (see [`Media::upload`]); the photo is
/// `pending` until the `thumbnail` function has looked at it.
#[utoipa::path(post, path = "/v1/photos", tag = "photos", request_body(content = PhotoUpload, content_type = "multipart/form-data"),
    security(("user_pool" = [])),
    responses((status = 202, description = "Stored; `pending`", body = Accepted, headers(("Location" = String))),
        (status = 400, description = "No `file` part", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "Over the upload limit", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 415, description = "Not a multipart form", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn upload(
    State(state): State<PhotoState>,
    principal: Principal,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, Problem> {
    let context = &state.0;
    principal.require_group(&context.authors_group)?;
    let limit = context.config.max_upload_bytes;
    let mut multipart =
        multipart.map_err(|e| Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.body_text()))?;
    let field = loop {
        match multipart.next_field().await.map_err(|e| multipart_problem(&e, limit))? {
            Some(field) if field.file_name().is_some() || field.name() == Some("file") => break field,
            Some(_) => {}
            None => return Err(Problem::new(StatusCode::BAD_REQUEST, "a `file` part is required")),
        }
    };
    let uploaded =
        context.media.upload(&Media::new_id(), field, &principal.username, limit).await.map_err(|error| {
            match error {
                UploadError::Source(error) => multipart_problem(&error, limit),
                other => upload_problem(other, limit),
            }
        })?;
    Ok(accepted(&uploaded.id))
}

fn upload_problem<E: std::error::Error + 'static>(error: UploadError<E>, limit: usize) -> Problem {
    match error {
        UploadError::TooLarge { .. } => too_large(limit),
        UploadError::Taken => Problem::new(StatusCode::CONFLICT, error.to_string()),
        UploadError::Source(ref source) => match BodyRefusal::of(source, limit) {
            BodyRefusal::TooLarge { .. } => too_large(limit),
            BodyRefusal::TooSlow => Problem::from(BodyRefusal::TooSlow),
            BodyRefusal::Unreadable => Problem::new(StatusCode::BAD_REQUEST, error.to_string()),
        },
        other => Problem::internal(&other),
    }
}

/// `202`: stored, `pending` until the `thumbnail` function has looked at it.
fn accepted(id: &str) -> Response {
    let body = Accepted { id: id.to_owned(), state: "pending".into() };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/photos/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Authors only: a URL that allows one direct upload (`PUT`, the photo as the body) until it
/// expires, for clients that should not hold the author's token while uploading.
#[utoipa::path(post, path = "/v1/photos/uploads", tag = "photos", security(("user_pool" = [])),
    responses((status = 201, description = "A URL for one direct upload", body = UploadLink),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn presign(State(state): State<PhotoState>, principal: Principal) -> Result<Response, Problem> {
    let context = &state.0;
    principal.require_group(&context.authors_group)?;
    let (id, token, expires) =
        context.media.presign(&principal.username).map_err(|e| Problem::internal(&e))?;
    let body = UploadLink {
        id: id.clone(),
        method: "PUT".into(),
        max_bytes: context.config.max_upload_bytes,
        upload_url: format!("{}/v1/photos/uploads/{id}?token={token}", context.public_url),
        expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadToken {
    /// The token of the presigned URL.
    token: Option<String>,
}

/// The presigned upload itself: the token is the credential, once.
#[utoipa::path(put, path = "/v1/photos/uploads/{id}", tag = "photos", params(("id" = String, Path, description = "The photo's id"), UploadToken),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The photo"),
    responses((status = 202, description = "Stored; `pending`", body = Accepted, headers(("Location" = String))),
        (status = 403, description = "The URL is invalid or has expired", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 409, description = "The URL was used already", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 413, description = "Over the upload limit", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn upload_presigned(
    State(state): State<PhotoState>,
    Path(id): Path<String>,
    Query(parameter): Query<UploadToken>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let context = &state.0;
    let uploader = context
        .media
        .check_presigned(&id, parameter.token.as_deref().unwrap_or_default())
        .map_err(|_| Problem::new(StatusCode::FORBIDDEN, "the upload URL is invalid or has expired"))?;
    let limit = context.config.max_upload_bytes;
    let uploaded = context
        .media
        .upload(&id, body.into_data_stream(), &uploader, limit)
        .await
        .map_err(|error| upload_problem(error, limit))?;
    Ok(accepted(&uploaded.id))
}

#[utoipa::path(get, path = "/v1/photos/{id}", tag = "photos", params(("id" = String, Path, description = "The photo's id")),
    responses((status = 200, description = "The photo and its thumbnails", body = PhotoView), (status = 404, description = "No such photo", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn show(State(state): State<PhotoState>, Path(id): Path<String>) -> Result<Response, Problem> {
    let not_found = || Problem::new(StatusCode::NOT_FOUND, format!("no photo `{id}`"));
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let photo = state.0.media.photos.get(&id).await?.ok_or_else(not_found)?;
    Ok(Json(representation(&photo)).into_response())
}

/// A photo as the API answers it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Photo)]
pub struct PhotoView {
    /// 32 hexadecimal digits.
    id: String,
    /// `pending` until the thumbnail function has looked at it, then `ready` or `failed`.
    state: String,
    /// Why it `failed`.
    reason: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    bytes: u64,
    /// The original, under `/media/`.
    original: String,
    thumbnails: Vec<ThumbnailView>,
    #[schema(format = DateTime)]
    uploaded_at: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ThumbnailView {
    url: String,
    format: super::thumbnail::OutputFormat,
    width: u32,
    height: u32,
}

/// An upload accepted: the photo is `pending`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    id: String,
    state: String,
}

/// A presigned upload: `PUT` the photo to `upload_url` before `expires_at`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UploadLink {
    id: String,
    /// Always `PUT`.
    method: String,
    max_bytes: usize,
    upload_url: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// A photo as a multipart form's `file` part.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "a schema only: the upload is streamed")]
pub struct PhotoUpload {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

fn representation(photo: &Photo) -> PhotoView {
    let thumbnails = photo
        .thumbnails
        .iter()
        .map(|t| ThumbnailView {
            url: format!("/media/{}", t.key),
            format: t.format,
            width: t.width,
            height: t.height,
        })
        .collect();
    PhotoView {
        id: photo.id.clone(),
        state: photo.state.as_str().to_owned(),
        reason: photo.reason.clone(),
        width: photo.width,
        height: photo.height,
        bytes: photo.bytes,
        original: format!("/media/{}", photo.key),
        thumbnails,
        uploaded_at: photo.uploaded_at.clone(),
    }
}

/// `/v1/photos` in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(upload, presign, upload_presigned, show),
    components(schemas(PhotoView, ThumbnailView, super::thumbnail::OutputFormat, Accepted, UploadLink, PhotoUpload, crate::infra::http::ProblemSchema)),
    tags((name = "photos", description = "The blog's photos: authors upload; thumbnails are made by the `thumbnail` function."))
)]
pub struct PhotosApi;
