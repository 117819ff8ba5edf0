//! Stratus: the serverless architecture of a blog and a todo-list backend, in one process.
//!
//! Each module is one component of the architecture; a module's port (trait) sits at its top
//! and its adapters beside it. See `ARCHITECTURE.md` at the repository root for the map.

pub mod app;
pub mod blobs;
pub mod blog;
pub mod cli;
pub mod clock;
pub mod component;
pub mod config;
pub mod edge;
pub mod events;
pub mod functions;
pub mod gateway;
pub mod health;
pub mod http;
pub mod identity;
pub mod mail;
pub mod media;
pub mod platform;
pub mod settings;
pub mod signing;
pub mod sigv4;
pub mod sqlite;
pub mod stream;
pub mod table;
pub mod telemetry;
