//! The applications: functions and the APIs they serve, written against ports and events only.

pub mod blog;
pub mod media;
pub mod registry;
pub mod todos;

/// Every application's REST APIs in the OpenAPI document.
pub fn openapi() -> Vec<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi as _;
    vec![
        blog::api::PostsApi::openapi(),
        blog::subscriber_api::SubscribersApi::openapi(),
        media::api::PhotosApi::openapi(),
        todos::api::TodosApi::openapi(),
    ]
}
