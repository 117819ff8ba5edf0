//! Todos: the mobile app's per-user lists. A todo belongs to the user-pool user whose access
//! token created it (the `sub`, never a field of the body); no one else can read, change or
//! even learn of it. `model` is what a todo is and what a request may say about it, `store` the
//! single-table design, `api` `/v1/todos`.

pub mod api;
mod config;
mod install;
pub mod model;
pub mod store;

pub use config::TodosConfig;
pub(crate) use install::install;
