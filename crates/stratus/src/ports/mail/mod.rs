//! The mail port: send one email per idempotency key.
//!
//! Adapters: [`OutboxMailer`] (one RFC 5322 `.eml` file per message, the default) and
//! [`SmtpMailer`] (any SMTP relay, via lettre); SES in `stratus-aws`. [`Deduplicated`] decorates
//! any with a sent-log so a key that was already sent is not sent again (one process: a SQL
//! table and a lock); [`Claimed`] does it across processes with a conditional put on a
//! [`Table`](crate::ports::table::Table). The key also fixes the Message-ID, so even a send
//! repeated after a crash (between the relay's acknowledgement and the log write) carries the
//! same Message-ID for receivers to recognise.

mod config;
pub use config::{MailConfig, MailTransport, SmtpConfig, SmtpTls};

mod claimed;
mod deduplicated;
mod outbox;
mod smtp;
pub(crate) mod templates;

use std::fmt::Debug;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use sha2::{Digest, Sha256};

pub use claimed::{Claimed, sent_log_spec};
pub use deduplicated::Deduplicated;
pub use outbox::{OutboxEntry, OutboxMailer};
pub use smtp::SmtpMailer;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Identifies the logical message (e.g. `welcome/<subscriber id>`): sending the same key
    /// twice sends once.
    pub idempotency_key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Extra headers such as `List-Unsubscribe`.
    pub headers: Vec<(String, String)>,
}

/// What a send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    /// True when the key had been sent before and nothing was sent now.
    pub duplicate: bool,
}

#[async_trait]
pub trait Mailer: Send + Sync + Debug + 'static {
    async fn send(&self, email: &Email) -> Result<Sent, MailError>;
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid recipient address `{address}`")]
    InvalidRecipient {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("invalid sender address `{address}`")]
    InvalidSender {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("invalid header `{name}`")]
    InvalidHeader { name: String },
    #[error("the idempotency key must not be empty")]
    MissingIdempotencyKey,
    #[error("cannot build the message")]
    Build(#[source] lettre::error::Error),
    #[error("cannot write to the outbox")]
    Outbox(#[source] std::io::Error),
    #[error("no message `{id}` in the outbox")]
    UnknownMessage { id: String },
    #[error("cannot read the SMTP CA certificate {}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the SMTP relay refused or failed")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// Another process claimed this key and has not finished sending; retry later.
    #[error("email `{key}` is being sent by another process")]
    SendInProgress { key: String },
    /// A mail service (SES) refused or failed; the source is its client's error.
    #[error("the mail service refused or failed")]
    Service(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The sent-log's storage failed; the source is the adapter's own error.
    #[error("storage failure")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The stable message identifier derived from an idempotency key (hex, 32 characters).
pub fn message_token(idempotency_key: &str) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    hex::encode(&digest[..16])
}

/// Builds the RFC 5322 message; its Message-ID depends only on the key and the sender domain.
pub fn compose(email: &Email, from: &Mailbox) -> Result<(String, Message), MailError> {
    if email.idempotency_key.is_empty() {
        return Err(MailError::MissingIdempotencyKey);
    }
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|source| MailError::InvalidRecipient { address: email.to.clone(), source })?;
    let message_id = format!("<{}@{}>", message_token(&email.idempotency_key), from.email.domain());
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(message_id.clone()));
    for (name, value) in &email.headers {
        let header_name = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| MailError::InvalidHeader { name: name.clone() })?;
        if value.contains(['\r', '\n']) {
            return Err(MailError::InvalidHeader { name: name.clone() });
        }
        builder = builder.raw_header(HeaderValue::new(header_name, value.clone()));
    }
    let message = match &email.html {
        None => builder.singlepart(SinglePart::plain(email.text.clone())),
        Some(html) => builder.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text.clone()))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
        ),
    }
    .map_err(MailError::Build)?;
    Ok((message_id, message))
}

/// Parses the configured sender.
pub fn parse_sender(from: &str) -> Result<Mailbox, MailError> {
    from.parse().map_err(|source| MailError::InvalidSender { address: from.to_owned(), source })
}
