//! Black-box tests of the `stratus` crate through its public surface: the ports, the function
//! host, the HTTP listener and the `stratus` binary.

#![allow(
    unreachable_pub,
    reason = "a test binary: its helpers are shared between its modules, never exported"
)]

mod architecture;
mod authorizer;
mod blobs;
mod blog;
mod config;
mod events;
mod functions;
mod gateway;
mod identity;
mod mail;
mod photos;
mod route_authorizers;
mod s3;
mod serve;
mod stream;
mod subscribers;
mod support;
mod table;
mod table_cache;
mod tls;
mod todos;
mod websocket;
