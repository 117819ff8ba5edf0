//! Markdown files with YAML front matter, as authors keep posts in a repository:
//!
//! ```text
//! ---
//! title: Hello, world
//! slug: hello-world        # optional: defaults to the file name
//! tags: [intro, rust]
//! date: 2026-11-28         # or a full RFC 3339 date-time
//! draft: false
//! summary: Optional.
//! cover: photos/cover.jpg  # optional, a key in the media bucket
//! ---
//! The body, in Markdown.
//! ```

use serde::Deserialize;

use super::{PostInput, PostStatus};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrontMatterError {
    #[error("the file must start with a `---` line opening the front matter")]
    Missing,
    #[error("the front matter is not closed by a `---` line")]
    Unclosed,
    #[error("invalid front matter: {0}")]
    Invalid(String),
    #[error("no slug: give one in the front matter or name the file after it")]
    NoSlug,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    title: String,
    slug: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    date: Option<String>,
    #[serde(default)]
    draft: bool,
    summary: Option<String>,
    cover: Option<String>,
}

/// Parses a post file; `file_stem` names the slug when the front matter does not.
pub(crate) fn parse(text: &str, file_stem: &str) -> Result<PostInput, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or(FrontMatterError::Missing)?;
    let (yaml, body) = split_closing(rest).ok_or(FrontMatterError::Unclosed)?;
    let fields: Fields =
        serde_yaml_ng::from_str(yaml).map_err(|e| FrontMatterError::Invalid(e.to_string()))?;
    let slug = fields
        .slug
        .or_else(|| (!file_stem.is_empty()).then(|| file_stem.to_lowercase()))
        .ok_or(FrontMatterError::NoSlug)?;
    let publish_date =
        fields.date.map(|date| if date.len() == 10 { format!("{date}T00:00:00Z") } else { date });
    Ok(PostInput {
        slug: Some(slug),
        title: fields.title,
        body: body.trim_start_matches(['\r', '\n']).to_owned(),
        summary: fields.summary,
        tags: fields.tags,
        cover: fields.cover,
        publish_date,
        status: Some(if fields.draft { PostStatus::Draft } else { PostStatus::Published }),
    })
}

/// Splits at the first line that is exactly `---`.
fn split_closing(rest: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_body_are_separated() {
        let post = parse("---\ntitle: Hello\ntags: [a, b]\ndate: 2026-11-28\n---\n\n# Body\n", "hello-world")
            .unwrap();
        assert_eq!(post.slug.as_deref(), Some("hello-world"));
        assert_eq!(post.title, "Hello");
        assert_eq!(post.tags, ["a", "b"]);
        assert_eq!(post.publish_date.as_deref(), Some("2026-11-28T00:00:00Z"));
        assert_eq!(post.status, Some(PostStatus::Published));
        assert_eq!(post.body, "# Body\n");
    }

    #[test]
    fn broken_front_matter_is_explained() {
        assert_eq!(parse("# No front matter", "x"), Err(FrontMatterError::Missing));
        assert_eq!(parse("---\ntitle: x\n", "x"), Err(FrontMatterError::Unclosed));
        assert!(matches!(parse("---\ntitle: [unclosed\n---\n", "x"), Err(FrontMatterError::Invalid(_))));
        assert!(matches!(parse("---\ntitel: typo\n---\n", "x"), Err(FrontMatterError::Invalid(_))));
    }
}
