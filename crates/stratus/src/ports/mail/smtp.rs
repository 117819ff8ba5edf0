//! The SMTP adapter: any relay, with STARTTLS, implicit TLS, or (for a relay on the same host)
//! no encryption; credentials from configuration.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Email, MailError, Mailer, Sent, compose};
use crate::ports::mail::{SmtpConfig, SmtpTls};

#[derive(Debug, Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Self, MailError> {
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(config)?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(config)?),
        };
        // lettre's plain builder; the TLS policy is set explicitly just below.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.expose().to_owned()));
        }
        Ok(Self { transport: builder.build(), from })
    }
}

/// Certificate checks against the public roots, plus the configured private CA if any.
fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|source| MailError::CaFile { path: path.clone(), source })?;
        builder = builder.add_root_certificate(Certificate::from_pem(&pem).map_err(MailError::Smtp)?);
    }
    builder.build_rustls().map_err(MailError::Smtp)
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
