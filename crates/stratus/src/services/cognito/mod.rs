//! Cognito: the user pool (sign-up, sign-in, tokens), Cognito's token format (`tokens`), and the
//! API's authorizer, which verifies access tokens from the built-in pools or any OpenID Connect
//! issuer and needs no user pool of its own (so a Lambda's authorizer needs no SQLite), and the
//! credentials store that SigV4 verification reads, and the identity pools that hand such
//! credentials to the user pools' users.

pub mod authorizer;
pub mod credentials;
pub mod identity_pool;
pub mod tokens;
pub mod user_pool;
