//! `[mail]`: the sender, and the transport (the file outbox or an SMTP relay).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, Secret, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message under `<stage dir>/outbox`.
    Outbox,
    Smtp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// Sender of every message, e.g. `Stratus <no-reply@example.com>`.
    pub from: String,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No encryption: only for a relay on the same host.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A PEM certificate to trust in addition to the public roots, for relays with a private CA.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::Outbox,
            from: "Stratus <no-reply@localhost>".into(),
            smtp: SmtpConfig::default(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl MailConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            return invalid("mail.from", format!("is not a valid mailbox: {e}"));
        }
        if self.transport == MailTransport::Smtp && self.smtp.host.is_empty() {
            return invalid("mail.smtp.host", "is required when mail.transport = \"smtp\"");
        }
        if let Some(ca_file) = &self.smtp.ca_file
            && !ca_file.is_file()
        {
            return invalid("mail.smtp.ca_file", format!("names {}, which is not a file", ca_file.display()));
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return invalid("mail.smtp.username", "and mail.smtp.password must be set together");
        }
        Ok(())
    }
}
