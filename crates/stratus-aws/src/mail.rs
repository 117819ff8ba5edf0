//! The mail port on SES: SESv2 `SendEmail` with the raw message the local transports send
//! (the same headers: `List-Unsubscribe`, the Message-ID from the idempotency key), sent once
//! per key by the port's [`Claimed`](stratus::ports::mail::Claimed) sent-log on DynamoDB.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use lettre::message::Mailbox;
use stratus::ports::mail::{Email, MailError, Mailer, Sent, compose};

/// Sends through SES from a verified identity.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: Mailbox,
    /// SES's configuration set (event publishing, suppression), when the template made one.
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: Mailbox, configuration_set: Option<String>) -> Self {
        Self { client, from, configuration_set }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        let (message_id, message) = compose(email, &self.from)?;
        let raw = RawMessage::builder()
            .data(Blob::new(message.formatted()))
            .build()
            .map_err(|error| MailError::Service(Box::new(error)))?;
        let output = self
            .client
            .send_email()
            .from_email_address(self.from.to_string())
            // A raw message's recipients are its `To` header, which compose wrote from `to`.
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|error| MailError::Service(Box::new(error)))?;
        // SES writes a Message-ID of its own on the way out; its id is what its events and
        // bounces name, so it is logged beside ours.
        tracing::info!(message_id = %message_id, ses_message_id = output.message_id().unwrap_or_default(), "email sent through SES");
        Ok(Sent { message_id, duplicate: false })
    }
}
