//! What a todo is, and what a request may say about one: [`Changes::parse`] reads a request
//! body field by field and lists every violation with its JSON pointer, so a client learns all
//! that is wrong at once and nothing is written.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::infra::http::Violation;
use crate::ports::table::Number;

/// What one user's todos may hold (`[todos]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub title_chars: usize,
    pub notes_chars: usize,
    pub tags: usize,
    pub tag_chars: usize,
    pub attachments: usize,
}

/// Highest priority; 0 is none.
pub const MAX_PRIORITY: u8 = 3;
/// Positions are exact decimals within ±10^15, enough to insert between neighbours for ever.
const MAX_POSITION: f64 = 1e15;

/// The counter that orders ids made within one millisecond.
pub type IdContext = std::sync::Mutex<uuid::ContextV7>;

/// A todo's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TodoId(String);

impl TodoId {
    /// A new id for a todo created at `millis` since the epoch; ids made with one `context`
    /// keep increasing within a millisecond too.
    pub fn new(millis: i64, context: &IdContext) -> Self {
        let millis = u64::try_from(millis).unwrap_or_default();
        let nanos = u32::try_from(millis % 1000).unwrap_or_default() * 1_000_000;
        let timestamp = uuid::Timestamp::from_unix(context, millis / 1000, nanos);
        Self(uuid::Uuid::new_v7(timestamp).hyphenated().to_string())
    }

    /// An id from a URL; `None` for anything this API could not have issued (a 404, as for an
    /// id that does not exist).
    pub fn parse(text: &str) -> Option<Self> {
        let uuid = uuid::Uuid::try_parse(text).ok()?;
        (uuid.get_version_num() == 7 && uuid.hyphenated().to_string() == text).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TodoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A due date: RFC 3339 as the client sent it, normalized to UTC, and its instant for sorting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub text: String,
    pub millis: i64,
}

impl Due {
    pub fn parse(text: &str) -> Result<Self, String> {
        let instant = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| format!("`{text}` is not an RFC 3339 date-time such as 2026-12-24T18:00:00Z"))?
            .to_offset(time::UtcOffset::UTC);
        let millis = i64::try_from(instant.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| format!("`{text}` is out of range"))?;
        let text = instant.format(&Rfc3339).map_err(|_| format!("`{text}` is out of range"))?;
        Ok(Self { text, millis })
    }
}

/// A stored todo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    pub id: TodoId,
    pub title: String,
    /// Markdown, as written.
    pub notes: Option<String>,
    pub done: bool,
    pub due: Option<Due>,
    pub priority: u8,
    pub tags: Vec<String>,
    /// Manual order: lists sorted by position show lower numbers first.
    pub position: Number,
    /// Keys in the owner's own folder of the user bucket.
    pub attachments: Vec<String>,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl Todo {
    /// The representation clients read.
    pub fn view(&self) -> TodoView {
        let position =
            serde_json::from_str(self.position.as_str()).unwrap_or_else(|_| serde_json::Number::from(0));
        TodoView {
            id: self.id.as_str().to_owned(),
            title: self.title.clone(),
            notes: self.notes.clone(),
            done: self.done,
            due: self.due.as_ref().map(|due| due.text.clone()),
            priority: self.priority,
            tags: self.tags.clone(),
            position,
            attachments: self.attachments.clone(),
            version: self.version,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    /// Applies what a request asked for.
    pub fn apply(&mut self, changes: Changes) {
        let Changes { title, notes, done, due, priority, tags, position, attachments } = changes;
        if let Some(title) = title {
            self.title = title;
        }
        if let Some(notes) = notes {
            self.notes = notes;
        }
        if let Some(done) = done {
            self.done = done;
        }
        if let Some(due) = due {
            self.due = due;
        }
        if let Some(priority) = priority {
            self.priority = priority;
        }
        if let Some(tags) = tags {
            self.tags = tags;
        }
        if let Some(position) = position {
            self.position = position;
        }
        if let Some(attachments) = attachments {
            self.attachments = attachments;
        }
    }
}

/// A todo as the API answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Todo)]
pub struct TodoView {
    /// A UUIDv7.
    pub id: String,
    pub title: String,
    /// Markdown, as written.
    pub notes: Option<String>,
    pub done: bool,
    /// RFC 3339, in UTC.
    #[schema(format = DateTime)]
    pub due: Option<String>,
    /// 0 (none) to 3.
    #[schema(minimum = 0, maximum = 3)]
    pub priority: u8,
    pub tags: Vec<String>,
    /// The manual order: lower first.
    #[schema(value_type = f64)]
    pub position: serde_json::Number,
    /// Keys in the owner's own folder of the user bucket.
    pub attachments: Vec<String>,
    /// Also the ETag, `"v<version>"`.
    #[schema(minimum = 1)]
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Whether a body creates a todo (a title is required) or patches one (every field optional;
/// `null` clears `notes` and `due`, as in a JSON merge patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Patch,
}

/// The fields a request sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub title: Option<String>,
    pub notes: Option<Option<String>>,
    pub done: Option<bool>,
    pub due: Option<Option<Due>>,
    pub priority: Option<u8>,
    pub tags: Option<Vec<String>>,
    pub position: Option<Number>,
    pub attachments: Option<Vec<String>>,
}

/// Fields the server sets; a body naming them is refused rather than silently ignored.
const READ_ONLY: [&str; 6] = ["id", "owner", "version", "created_at", "updated_at", "sub"];
const FIELDS: &str = "title, notes, done, due, priority, tags, position, attachments";

impl Changes {
    /// Reads a request body, collecting every violation.
    pub fn parse(body: &Value, mode: Mode, limits: &Limits) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let Some(fields) = body.as_object() else {
            return Err(vec![Violation::new("", "the body must be a JSON object")]);
        };
        let mut changes = Self::default();
        for (name, value) in fields {
            let pointer = format!("/{}", escape_pointer(name));
            let mut check = |result: Result<(), String>| {
                if let Err(detail) = result {
                    violations.push(Violation::new(pointer.clone(), detail));
                }
            };
            match name.as_str() {
                "title" => check(title(value, limits).map(|title| changes.title = Some(title))),
                "notes" => check(
                    nullable(value, |value| notes(value, limits)).map(|notes| changes.notes = Some(notes)),
                ),
                "done" => check(
                    value
                        .as_bool()
                        .ok_or_else(|| "must be true or false".to_owned())
                        .map(|done| changes.done = Some(done)),
                ),
                "due" => check(nullable(value, due).map(|due| changes.due = Some(due))),
                "priority" => check(priority(value).map(|priority| changes.priority = Some(priority))),
                "position" => check(position(value).map(|position| changes.position = Some(position))),
                "tags" => match tags(value, limits) {
                    Ok(tags) => changes.tags = Some(tags),
                    Err(found) => violations.extend(found),
                },
                "attachments" => match attachments(value, limits) {
                    Ok(keys) => changes.attachments = Some(keys),
                    Err(found) => violations.extend(found),
                },
                other if READ_ONLY.contains(&other) => check(Err(format!("`{other}` is set by the server"))),
                _ => check(Err(format!("unknown field; a todo has {FIELDS}"))),
            }
        }
        if mode == Mode::Create && !fields.contains_key("title") {
            violations.push(Violation::new("/title", "is required"));
        }
        if violations.is_empty() { Ok(changes) } else { Err(violations) }
    }
}

/// RFC 6901: `~` and `/` in a member name.
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn nullable<T>(value: &Value, parse: impl FnOnce(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    if value.is_null() { Ok(None) } else { parse(value).map(Some) }
}

fn text(value: &Value, max_chars: usize) -> Result<&str, String> {
    let text = value.as_str().ok_or_else(|| "must be a string".to_owned())?;
    if text.chars().count() > max_chars {
        return Err(format!("is longer than {max_chars} characters"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err("must not contain control characters".into());
    }
    Ok(text)
}

fn title(value: &Value, limits: &Limits) -> Result<String, String> {
    let title = text(value, limits.title_chars)?;
    if title.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if title.contains('\n') {
        return Err("must be one line".into());
    }
    Ok(title.to_owned())
}

fn notes(value: &Value, limits: &Limits) -> Result<String, String> {
    text(value, limits.notes_chars).map(str::to_owned)
}

fn due(value: &Value) -> Result<Due, String> {
    Due::parse(value.as_str().ok_or_else(|| "must be an RFC 3339 date-time string or null".to_owned())?)
}

fn priority(value: &Value) -> Result<u8, String> {
    value
        .as_u64()
        .and_then(|priority| u8::try_from(priority).ok())
        .filter(|priority| *priority <= MAX_PRIORITY)
        .ok_or_else(|| format!("must be a whole number from 0 (none) to {MAX_PRIORITY}"))
}

fn position(value: &Value) -> Result<Number, String> {
    let number = value.as_number().ok_or_else(|| "must be a number".to_owned())?;
    if number.as_f64().is_none_or(|float| !float.is_finite() || float.abs() > MAX_POSITION) {
        return Err(format!("must be within ±{MAX_POSITION:e}"));
    }
    Number::parse(&number.to_string()).map_err(|e| e.to_string())
}

/// A list of short strings (tags, attachment keys): every bad element is its own violation.
fn strings(
    value: &Value,
    pointer: &str,
    max_items: usize,
    element: impl Fn(&Value) -> Result<String, String>,
) -> Result<Vec<String>, Vec<Violation>> {
    let Some(list) = value.as_array() else {
        return Err(vec![Violation::new(pointer, "must be an array of strings")]);
    };
    if list.len() > max_items {
        return Err(vec![Violation::new(
            pointer,
            format!("holds {} items; at most {max_items} are allowed", list.len()),
        )]);
    }
    let mut violations = Vec::new();
    let mut items: Vec<String> = Vec::with_capacity(list.len());
    for (position, value) in list.iter().enumerate() {
        match element(value) {
            Ok(item) if items.contains(&item) => {
                violations.push(Violation::new(
                    format!("{pointer}/{position}"),
                    format!("`{item}` is listed twice"),
                ));
            }
            Ok(item) => items.push(item),
            Err(detail) => violations.push(Violation::new(format!("{pointer}/{position}"), detail)),
        }
    }
    if violations.is_empty() { Ok(items) } else { Err(violations) }
}

fn tags(value: &Value, limits: &Limits) -> Result<Vec<String>, Vec<Violation>> {
    strings(value, "/tags", limits.tags, |value| {
        let tag = text(value, limits.tag_chars)?;
        if tag.trim().is_empty() || tag.trim() != tag || tag.contains('\n') {
            return Err("must be a non-empty word or phrase without surrounding spaces".into());
        }
        Ok(tag.to_owned())
    })
}

/// Keys only; whether they are valid, the caller's and there is the API's to check, with
/// the bucket at hand.
fn attachments(value: &Value, limits: &Limits) -> Result<Vec<String>, Vec<Violation>> {
    strings(value, "/attachments", limits.attachments, |value| {
        value.as_str().map(str::to_owned).ok_or_else(|| "must be a string".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { title_chars: 20, notes_chars: 50, tags: 3, tag_chars: 8, attachments: 2 };

    #[test]
    fn every_violation_is_listed_with_its_pointer() {
        let body = serde_json::json!({
            "title": "", "done": "yes", "due": "tomorrow", "priority": 9, "position": "first",
            "tags": ["a", "a", 3], "owner": "someone-else", "colour": "red", "a/b": 1,
        });
        let violations = Changes::parse(&body, Mode::Create, &LIMITS).expect_err("invalid");
        let mut pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            [
                "/a~1b",
                "/colour",
                "/done",
                "/due",
                "/owner",
                "/position",
                "/priority",
                "/tags/1",
                "/tags/2",
                "/title"
            ]
        );
    }

    #[test]
    fn a_patch_may_clear_notes_and_due_but_not_the_title() {
        let body = serde_json::json!({ "notes": null, "due": null });
        let changes = Changes::parse(&body, Mode::Patch, &LIMITS).expect("valid");
        assert_eq!(changes.notes, Some(None));
        assert_eq!(changes.due, Some(None));
        let body = serde_json::json!({ "title": null });
        assert!(Changes::parse(&body, Mode::Patch, &LIMITS).is_err());
        assert!(
            Changes::parse(&serde_json::json!({}), Mode::Create, &LIMITS).is_err(),
            "a title is required"
        );
    }

    #[test]
    fn due_dates_are_normalized_to_utc() {
        let due = Due::parse("2026-12-24T18:00:00+02:00").expect("valid");
        assert_eq!(due.text, "2026-12-24T16:00:00Z");
        assert_eq!(due.millis, 1_798_128_000_000);
        assert!(Due::parse("2026-12-24").is_err());
    }

    #[test]
    fn ids_are_time_ordered_and_only_issued_ones_parse() {
        let context = IdContext::new(uuid::ContextV7::new());
        let (first, second) = (TodoId::new(1_000, &context), TodoId::new(1_000, &context));
        assert!(first < second, "within one millisecond too");
        assert_eq!(TodoId::parse(first.as_str()), Some(first));
        assert_eq!(TodoId::parse("not-an-id"), None);
        assert_eq!(TodoId::parse(&uuid::Uuid::new_v4().to_string()), None);
    }
}
