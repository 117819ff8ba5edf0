//! The blog's subscribers: validated, normalized addresses stored once each in the blog table,
//! listed by authors, and removed with a signed, expiring unsubscribe token.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::infra::clock::Clock;
use crate::item;
use crate::ports::table::decode::{self, AttributeError};
use crate::ports::table::{AttributeValue, Condition, Cursor, Item, Query, Table, TableError};
use crate::services::signing::{SignedLinks, SigningError};

/// Partition of the `subscribers` index: every subscriber, oldest first.
const LISTING: &str = "SUBSCRIBERS";
const SUBSCRIBER: &str = "SUBSCRIBER";
/// RFC 5321: a path is at most 256 octets, brackets included.
const MAX_ADDRESS: usize = 254;
const AUDIENCE: &str = "unsubscribe";

/// A subscriber's address: trimmed, lower-cased, at most 254 bytes, a valid mailbox at a domain
/// with a dot. Case is folded because readers do not think of `Ada@` and `ada@` as two people.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Address(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAddress {
    #[error("an email address is required")]
    Missing,
    #[error("the email address is longer than {MAX_ADDRESS} characters")]
    TooLong,
    #[error("`{0}` is not a valid email address")]
    Malformed(String),
}

impl Address {
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        let address = raw.trim().to_lowercase();
        if address.is_empty() {
            return Err(InvalidAddress::Missing);
        }
        if address.len() > MAX_ADDRESS {
            return Err(InvalidAddress::TooLong);
        }
        let parsed =
            lettre::Address::from_str(&address).map_err(|_| InvalidAddress::Malformed(address.clone()))?;
        let domain = parsed.domain();
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.starts_with('[')
        {
            return Err(InvalidAddress::Malformed(address));
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Subscriber {
    pub email: String,
    pub subscribed_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberPage {
    pub subscribers: Vec<Subscriber>,
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("the unsubscribe link is invalid or has expired")]
    InvalidToken,
    #[error("cannot sign or check the unsubscribe link")]
    Signing(#[from] SigningError),
    #[error("a stored subscriber is corrupt")]
    Corrupt(#[from] AttributeError),
    #[error("storage failure")]
    Table(#[source] TableError),
}

impl From<TableError> for SubscriberError {
    fn from(error: TableError) -> Self {
        match error {
            TableError::InvalidCursor { .. } => Self::InvalidCursor,
            other => Self::Table(other),
        }
    }
}

/// Whether a subscription created something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    New,
    AlreadySubscribed,
}

/// True for the stream image of a subscriber item.
pub fn is_subscriber(item: &Item) -> bool {
    item.get("sk").and_then(AttributeValue::as_s) == Some(SUBSCRIBER)
}

/// The address of a subscriber item.
pub fn address_of(item: &Item) -> Option<Address> {
    item.get("email").and_then(AttributeValue::as_s).and_then(|email| Address::parse(email).ok())
}

fn key(address: &Address) -> Item {
    item! { "pk" => format!("SUBSCRIBER#{address}"), "sk" => SUBSCRIBER }
}

#[derive(Debug, Clone)]
pub struct SubscriberStore {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl SubscriberStore {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Stores `address` unless it is already there; a second subscription changes nothing, so
    /// it produces no stream record and no second welcome.
    pub async fn subscribe(&self, address: &Address) -> Result<Subscribed, SubscriberError> {
        let now = humantime::format_rfc3339_millis(self.clock.now()).to_string();
        let mut item = key(address);
        item.insert("email".into(), address.as_str().into());
        item.insert("subscribed_at".into(), now.clone().into());
        item.insert("gsi3pk".into(), LISTING.into());
        item.insert("gsi3sk".into(), format!("{now}#{address}").into());
        match self.table.put(item, Some(Condition::not_exists("pk"))).await {
            Ok(_) => Ok(Subscribed::New),
            Err(TableError::ConditionFailed) => Ok(Subscribed::AlreadySubscribed),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes `address`; true when it was subscribed.
    pub async fn unsubscribe(&self, address: &Address) -> Result<bool, SubscriberError> {
        Ok(self.table.delete(&key(address), None).await?.is_some())
    }

    pub async fn is_subscribed(&self, address: &Address) -> Result<bool, SubscriberError> {
        Ok(self.table.get(&key(address)).await?.is_some())
    }

    /// Subscribers, oldest first; `cursor` continues a listing.
    pub async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<SubscriberPage, SubscriberError> {
        let cursor = cursor.map(Cursor::from_token).transpose()?;
        let query = Query::partition(LISTING).index(super::store::SUBSCRIBERS_INDEX);
        let page = self.table.query(query.limit(limit).start_after(cursor)).await?;
        let subscribers = page
            .items
            .iter()
            .map(|item| {
                Ok(Subscriber {
                    email: decode::string(item, "email")?,
                    subscribed_at: decode::string(item, "subscribed_at")?,
                })
            })
            .collect::<Result<_, AttributeError>>()?;
        Ok(SubscriberPage { subscribers, next: page.next.map(|cursor| cursor.to_token()) })
    }
}

/// Unsubscribe links: a signed, expiring token naming the address.
#[derive(Debug, Clone)]
pub struct UnsubscribeTokens(SignedLinks);

impl UnsubscribeTokens {
    /// The stage's key lives in the blog table.
    pub async fn open(
        table: &Arc<dyn Table>,
        clock: Arc<dyn Clock>,
        lifetime: Duration,
    ) -> Result<Self, SubscriberError> {
        let key = item! { "pk" => "SECRET#unsubscribe", "sk" => "SECRET" };
        Ok(Self(SignedLinks::open(table, key, AUDIENCE, clock, lifetime).await?))
    }

    pub fn issue(&self, address: &Address) -> Result<String, SubscriberError> {
        Ok(self.0.issue(address.as_str())?.0)
    }

    /// The address a token was issued for, when its signature holds and it has not expired.
    pub fn verify(&self, token: &str) -> Result<Address, SubscriberError> {
        let subject = self.0.verify(token).map_err(|_| SubscriberError::InvalidToken)?;
        Address::parse(&subject).map_err(|_| SubscriberError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_and_bad_ones_refused() {
        assert_eq!(Address::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        assert_eq!(Address::parse(""), Err(InvalidAddress::Missing));
        assert_eq!(Address::parse(&format!("{}@example.com", "a".repeat(250))), Err(InvalidAddress::TooLong));
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "ada@@example.com",
            "a b@example.com",
            "ada@example.",
        ] {
            assert!(matches!(Address::parse(bad), Err(InvalidAddress::Malformed(_))), "{bad}");
        }
    }
}
