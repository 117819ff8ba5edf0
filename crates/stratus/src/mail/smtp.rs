//! The SMTP adapter: any relay, with STARTTLS, implicit TLS, or (for a relay on the same host)
//! no encryption; credentials from configuration.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Email, MailError, Mailer, Sent, compose};
use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Self, MailError> {
        let builder = match config.tls {
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(MailError::Smtp)?
            }
            SmtpTls::Implicit => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(MailError::Smtp)?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(Self { transport: builder.build(), from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        let (message_id, message) = compose(email, &self.from)?;
        self.transport.send(message).await.map_err(MailError::Smtp)?;
        tracing::info!(message_id = %message_id, "email handed to the SMTP relay");
        Ok(Sent { message_id, duplicate: false })
    }
}
