//! Signed, expiring links (unsubscribe links, presigned uploads): HS256 JWTs whose audience
//! names what they allow, signed with a random key created once per stage and purpose in a
//! table by a conditional write, so every process of the stage agrees on it.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::infra::clock::{Clock, millis_since_epoch};
use crate::ports::table::{AttributeValue, Condition, Item, Table, TableError};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the link is invalid or has expired")]
    Invalid,
    #[error("the signing key `{0}` is missing from its table")]
    MissingKey(String),
    #[error("cannot sign the link")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("cannot read or create the signing key")]
    Table(#[from] TableError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    exp: i64,
}

#[derive(Clone)]
pub struct SignedLinks {
    audience: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    clock: Arc<dyn Clock>,
    lifetime: Duration,
}

impl std::fmt::Debug for SignedLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedLinks")
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SignedLinks {
    /// Links for `audience`, signed with the key stored in the item `key` of `table`, valid
    /// for `lifetime`.
    pub async fn open(
        table: &Arc<dyn Table>,
        key: Item,
        audience: &'static str,
        clock: Arc<dyn Clock>,
        lifetime: Duration,
    ) -> Result<Self, SigningError> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let mut fresh = key.clone();
        fresh.insert("secret".into(), AttributeValue::B(secret.to_vec()));
        match table.put(fresh, Some(Condition::not_exists("secret"))).await {
            Ok(_) | Err(TableError::ConditionFailed) => {}
            Err(error) => return Err(error.into()),
        }
        let stored = table.get(&key).await?.and_then(|item| match item.get("secret") {
            Some(AttributeValue::B(bytes)) => Some(bytes.clone()),
            _ => None,
        });
        let secret = stored.ok_or_else(|| SigningError::MissingKey(audience.to_owned()))?;
        Ok(Self {
            audience,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            clock,
            lifetime,
        })
    }

    /// A token for `subject` and when it expires.
    pub fn issue(&self, subject: &str) -> Result<(String, std::time::SystemTime), SigningError> {
        let expires = self.clock.now() + self.lifetime;
        let claims = Claims {
            sub: subject.into(),
            aud: self.audience.into(),
            exp: millis_since_epoch(expires) / 1000,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(SigningError::Sign)?;
        Ok((token, expires))
    }

    /// The subject of a token whose signature and audience hold and that has not expired.
    pub fn verify(&self, token: &str) -> Result<String, SigningError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[self.audience]);
        // Expiry is checked below against our clock, not the system's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| SigningError::Invalid)?
            .claims;
        if claims.exp * 1000 <= self.clock.now_millis() {
            return Err(SigningError::Invalid);
        }
        Ok(claims.sub)
    }
}
