//! The welcome email: sent once per subscriber, when the subscriber item is inserted. The
//! message's idempotency key is the address, so the stream redelivering a record after a crash
//! or a failed batch never sends a second welcome.

use std::sync::Arc;

use minijinja::{Environment, context};

use super::store::PostStore;
use super::subscribers::{Address, SubscriberError, UnsubscribeTokens, address_of, is_subscriber};
use crate::ports::events::{BatchResponse, ChangeKind, TableChange};
use crate::ports::mail::{Email, MailError, Mailer};

/// Latest posts listed in the welcome.
const LATEST_POSTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum WelcomeError {
    #[error("cannot render the welcome email")]
    Template(#[from] minijinja::Error),
    #[error("cannot list the latest posts")]
    Posts(#[from] super::store::PostError),
    #[error(transparent)]
    Token(#[from] SubscriberError),
    #[error("cannot send the welcome email")]
    Mail(#[from] MailError),
}

#[derive(Debug)]
pub struct Welcome {
    mailer: Arc<dyn Mailer>,
    tokens: UnsubscribeTokens,
    posts: PostStore,
    blog_title: String,
    public_url: String,
    templates: Environment<'static>,
}

impl Welcome {
    pub fn new(
        mailer: Arc<dyn Mailer>,
        tokens: UnsubscribeTokens,
        posts: PostStore,
        blog_title: &str,
        public_url: &str,
    ) -> Self {
        Self {
            mailer,
            tokens,
            posts,
            blog_title: blog_title.to_owned(),
            public_url: public_url.to_owned(),
            templates: environment(),
        }
    }

    /// The `welcome-email` function: a welcome for each inserted subscriber, in order. On a
    /// failure the batch reports that record, so the stream retries from there (with backoff,
    /// then dead-letters it) and keeps the checkpoint of those before it.
    pub async fn handle(&self, changes: &[TableChange]) -> BatchResponse {
        for change in changes {
            let inserted = change.event_name == ChangeKind::Insert;
            let image = change.dynamodb.new_image.as_ref().filter(|image| inserted && is_subscriber(image));
            let Some(address) = image.and_then(address_of) else { continue };
            if let Err(error) = self.send(&address).await {
                tracing::warn!(error = %crate::infra::telemetry::error_chain(&error), %address, "welcome email failed");
                return BatchResponse::failed_from(change.dynamodb.sequence_number.clone());
            }
        }
        BatchResponse::success()
    }

    /// Sends the welcome to `address`; a second call for the same address sends nothing.
    pub async fn send(&self, address: &Address) -> Result<(), WelcomeError> {
        let email = self.render(address).await?;
        let sent = self.mailer.send(&email).await?;
        tracing::info!(%address, message_id = %sent.message_id, duplicate = sent.duplicate, "welcome email");
        Ok(())
    }

    async fn render(&self, address: &Address) -> Result<Email, WelcomeError> {
        let latest = self.posts.list_published(None, LATEST_POSTS, None).await?;
        let posts: Vec<_> = latest
            .posts
            .iter()
            .map(|post| {
                context! {
                    title => post.title, summary => post.summary,
                    url => format!("{}/posts/{}/", self.public_url, post.slug),
                }
            })
            .collect();
        let unsubscribe_url = unsubscribe_url(&self.public_url, &self.tokens.issue(address)?);
        let values = context! {
            blog_title => self.blog_title, blog_url => self.public_url, address => address.as_str(),
            posts => posts, unsubscribe_url => unsubscribe_url,
        };
        let environment = &self.templates;
        Ok(Email {
            idempotency_key: format!("welcome/{address}"),
            to: address.to_string(),
            subject: format!("Welcome to {}", self.blog_title),
            text: environment.get_template("welcome.txt")?.render(&values)?,
            html: Some(environment.get_template("welcome.html")?.render(&values)?),
            headers: vec![
                ("List-Unsubscribe".into(), format!("<{unsubscribe_url}>")),
                // RFC 8058: mail clients may unsubscribe with one POST, without opening a page.
                ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
            ],
        })
    }
}

pub fn unsubscribe_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/v1/subscribers/unsubscribe?token={token}")
}

fn environment() -> Environment<'static> {
    crate::ports::mail::templates::environment(&[
        ("welcome.txt", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/welcome.txt"))),
        ("welcome.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/welcome.html"))),
    ])
}
