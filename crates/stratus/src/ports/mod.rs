//! Ports, each with its local adapters: what functions reach the world through, and the events
//! they receive, in AWS's JSON shapes. On AWS the same ports have DynamoDB, S3 and SES adapters.

pub mod blobs;
pub mod events;
pub mod mail;
pub mod stream;
pub mod table;
