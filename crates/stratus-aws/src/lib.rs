//! Stratus on AWS: adapters of the local product's ports over AWS services, so the same
//! function code runs as Lambda functions when one machine is no longer enough.

pub mod dynamodb;
pub mod lambda;
pub mod mail;
pub mod objects;
pub mod sdk;
