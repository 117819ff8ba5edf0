//! Infrastructure every layer may use; it knows no port, service or application.

pub(crate) mod aws_json;
pub(crate) mod aws_query;
pub mod clock;
pub(crate) mod files;
pub mod http;
pub mod settings;
pub mod sigv4;
pub mod sqlite;
pub(crate) mod stamps;
pub mod telemetry;
