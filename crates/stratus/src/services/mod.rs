//! The local stand-ins for AWS's managed services: the edge (CloudFront), the gateway (API
//! Gateway), the function host (Lambda), Cognito, IAM's policy evaluation, S3's API over the buckets, and signed links
//! (presigned URLs).

pub mod cognito;
pub mod edge;
pub mod functions;
pub mod gateway;
pub mod iam;
pub mod s3;
pub mod signing;
pub mod sts;
