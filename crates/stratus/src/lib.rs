//! Stratus: the serverless architecture of a blog and a todo-list backend, in one process.
//!
//! The tree is the architecture (see `ARCHITECTURE.md` at the repository root for the map).
//! Dependencies point down the layers: `apps` use `services` and `ports`, `services` use
//! `ports`, everything uses `infra`; the wiring at the top (`app`, `component`, `platform`,
//! `config`, `health`, `cli`) knows them all.

pub mod apps;
pub mod infra;
pub mod ports;
pub mod services;

pub mod app;
pub mod cli;
pub(crate) mod component;
pub mod config;
pub(crate) mod health;
pub mod platform;
