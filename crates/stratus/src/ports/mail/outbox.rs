//! The file outbox: one `.eml` file per message, named by its message token, written atomically
//! (temporary file, then rename) so a reader never sees half a message.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use lettre::message::Mailbox;

use super::{Email, MailError, Mailer, Sent, compose, message_token};

#[derive(Debug, Clone)]
pub struct OutboxMailer {
    directory: PathBuf,
    from: Mailbox,
}

/// A message in the outbox, as `stratus mail ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: String,
    pub written: SystemTime,
    pub to: String,
    pub subject: String,
}

impl OutboxMailer {
    pub fn new(directory: &Path, from: Mailbox) -> Result<Self, MailError> {
        std::fs::create_dir_all(directory).map_err(MailError::Outbox)?;
        Ok(Self { directory: directory.to_owned(), from })
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.directory.join(format!("{id}.eml"))
    }

    /// Messages, oldest first.
    pub fn list(&self) -> Result<Vec<OutboxEntry>, MailError> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.directory).map_err(MailError::Outbox)? {
            let entry = entry.map_err(MailError::Outbox)?;
            let path = entry.path();
            let Some(id) =
                path.file_name().and_then(|name| name.to_str()).and_then(|name| name.strip_suffix(".eml"))
            else {
                continue;
            };
            let raw = std::fs::read_to_string(&path).map_err(MailError::Outbox)?;
            let written = entry.metadata().and_then(|meta| meta.modified()).map_err(MailError::Outbox)?;
            entries.push(OutboxEntry {
                id: id.to_owned(),
                written,
                to: header(&raw, "To").unwrap_or_default(),
                subject: header(&raw, "Subject").unwrap_or_default(),
            });
        }
        entries.sort_by(|a, b| a.written.cmp(&b.written).then_with(|| a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// The raw message with this id (or unique id prefix).
    pub fn read(&self, id: &str) -> Result<String, MailError> {
        let unknown = || MailError::UnknownMessage { id: id.to_owned() };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let matching: Vec<OutboxEntry> =
            self.list()?.into_iter().filter(|entry| entry.id.starts_with(id)).collect();
        let [entry] = matching.as_slice() else { return Err(unknown()) };
        std::fs::read_to_string(self.path_of(&entry.id)).map_err(MailError::Outbox)
    }
}

/// The first value of a header in a raw message (unfolded; encoded words left as they are).
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((field, value)) = line.split_once(':') else { continue };
        if field.eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_owned();
            while let Some(continuation) = lines.next_if(|next| next.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(continuation.trim());
            }
            return Some(value);
        }
    }
    None
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        let (message_id, message) = compose(email, &self.from)?;
        let id = message_token(&email.idempotency_key);
        let final_path = self.path_of(&id);
        let temporary = self.directory.join(format!(".{id}.tmp"));
        let bytes = message.formatted();
        tokio::fs::write(&temporary, &bytes).await.map_err(MailError::Outbox)?;
        tokio::fs::rename(&temporary, &final_path).await.map_err(MailError::Outbox)?;
        tracing::info!(message_id = %message_id, outbox_id = %id, "email written to the outbox");
        Ok(Sent { message_id, duplicate: false })
    }
}
