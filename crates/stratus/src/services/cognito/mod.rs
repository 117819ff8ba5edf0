//! Cognito: the user pool (sign-up, sign-in, tokens, and the API's authorizer). The identity
//! pool and the credentials store that SigV4 verification reads go beside it.

pub mod user_pool;
