//! Strings as policies write them: literal text, the wildcards `*` (any run of characters,
//! `/` and `:` included) and `?` (exactly one), and — under Version `2012-10-17` — policy
//! variables `${key}` or `${key, 'default'}`, with `${*}`, `${?}` and `${$}` for the literal
//! characters. A variable's value is always literal text: a `*` in a user's id matches only `*`.

use super::context::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(char),
    Star,
    Question,
    Variable { key: String, default: Option<String> },
}

/// A policy string, parsed once when the policy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

/// A variable names a key the request does not have, and gives no default: whatever used it
/// does not match (AWS never substitutes an empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unresolved;

/// How a template is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    /// `*` and `?` are wildcards (Action, Resource, `StringLike`, `ArnLike`).
    Wildcards,
    /// `*` and `?` are characters like any other (`StringEquals`).
    Exact,
}

impl Template {
    /// `variables` is false for policies of Version `2008-10-17`, where `${…}` is plain text.
    pub(super) fn parse(text: &str, variables: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let end = rest.find('}').ok_or_else(|| format!("`{text}` has an unterminated `${{`"))?;
                parts.push(variable(&rest[2..end]).map_err(|problem| format!("`{text}`: {problem}"))?);
                rest = &rest[end + 1..];
                continue;
            }
            parts.push(match c {
                '*' => Part::Star,
                '?' => Part::Question,
                other => Part::Literal(other),
            });
            rest = &rest[c.len_utf8()..];
        }
        Ok(Self { parts })
    }

    /// Whether `value` matches, with variables taken from `context`.
    pub(super) fn matches(
        &self,
        value: &str,
        compare: Compare,
        ignore_case: bool,
        context: &Context,
    ) -> Result<bool, Unresolved> {
        let fold = |c: char| -> Vec<char> { if ignore_case { c.to_lowercase().collect() } else { vec![c] } };
        let mut pattern = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(c) => pattern.extend(fold(*c).into_iter().map(Piece::Char)),
                Part::Star if compare == Compare::Wildcards => pattern.push(Piece::AnyRun),
                Part::Question if compare == Compare::Wildcards => pattern.push(Piece::AnyOne),
                Part::Star => pattern.push(Piece::Char('*')),
                Part::Question => pattern.push(Piece::Char('?')),
                Part::Variable { key, default } => {
                    let resolved = context.single(key).or(default.as_deref()).ok_or(Unresolved)?;
                    pattern.extend(resolved.chars().flat_map(fold).map(Piece::Char));
                }
            }
        }
        let value: Vec<char> = value.chars().flat_map(fold).collect();
        Ok(glob(&pattern, &value))
    }

    /// The text with its variables resolved and wildcards kept, for values compared by
    /// something other than string matching (numbers, dates).
    pub(super) fn resolve(&self, context: &Context) -> Result<String, Unresolved> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(c) => text.push(*c),
                Part::Star => text.push('*'),
                Part::Question => text.push('?'),
                Part::Variable { key, default } => {
                    text.push_str(context.single(key).or(default.as_deref()).ok_or(Unresolved)?);
                }
            }
        }
        Ok(text)
    }
}

/// The inside of `${…}`.
fn variable(inside: &str) -> Result<Part, String> {
    match inside {
        "*" => return Ok(Part::Literal('*')),
        "?" => return Ok(Part::Literal('?')),
        "$" => return Ok(Part::Literal('$')),
        _ => {}
    }
    let (key, default) = match inside.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|rest| rest.strip_suffix('\''))
                .ok_or_else(|| format!("the default of `${{{inside}}}` must be in single quotes"))?;
            (key.trim(), Some(quoted.to_owned()))
        }
        None => (inside.trim(), None),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("`${{{inside}}}` does not name a key"));
    }
    Ok(Part::Variable { key: key.to_owned(), default })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Char(char),
    AnyRun,
    AnyOne,
}

/// Wildcard matching with one backtrack point: linear in practice, quadratic at worst.
fn glob(pattern: &[Piece], value: &[char]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Piece::AnyRun) => {
                star = Some((p, v));
                p += 1;
            }
            Some(Piece::AnyOne) => {
                p += 1;
                v += 1;
            }
            Some(Piece::Char(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again.
                Some((star_p, star_v)) => {
                    p = star_p + 1;
                    v = star_v + 1;
                    star = Some((star_p, star_v + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| *piece == Piece::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Template::parse(pattern, true)
            .expect("pattern")
            .matches(value, Compare::Wildcards, false, &Context::default())
            .expect("resolved")
    }

    #[test]
    fn a_star_spans_slashes_and_colons_and_a_question_mark_is_one_character() {
        assert!(matches("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b/c"));
        assert!(matches("arn:*:s3:::bucket", "arn:aws:s3:::bucket"));
        assert!(matches("s3:*Object", "s3:GetObject"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(!matches("a?c", "abbc"));
        assert!(matches("*", ""));
        assert!(!matches("bucket/*", "bucket"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn special_variables_are_literal_characters() {
        assert!(matches("a${*}b", "a*b"));
        assert!(!matches("a${*}b", "axb"));
        assert!(matches("${$}{x}", "${x}"));
        assert!(matches("why${?}", "why?"));
        assert!(!matches("why${?}", "whyy"));
    }

    #[test]
    fn a_variable_is_literal_text_and_a_missing_one_is_unresolved_unless_defaulted() {
        let context = Context::default().with("aws:username", "a*");
        let template = Template::parse("home/${aws:username}/*", true).expect("pattern");
        assert_eq!(template.matches("home/a*/x", Compare::Wildcards, false, &context), Ok(true));
        assert_eq!(template.matches("home/ab/x", Compare::Wildcards, false, &context), Ok(false));
        let missing = Template::parse("home/${aws:userid}/*", true).expect("pattern");
        assert_eq!(missing.matches("home//x", Compare::Wildcards, false, &context), Err(Unresolved));
        let defaulted = Template::parse("home/${aws:userid, 'nobody'}/*", true).expect("pattern");
        assert_eq!(defaulted.matches("home/nobody/x", Compare::Wildcards, false, &context), Ok(true));
    }

    #[test]
    fn without_variables_a_dollar_brace_is_text_and_malformed_variables_are_refused() {
        let old = Template::parse("${aws:username}", false).expect("pattern");
        assert_eq!(old.matches("${aws:username}", Compare::Exact, false, &Context::default()), Ok(true));
        assert!(Template::parse("home/${aws:username", true).is_err());
        assert!(Template::parse("${}", true).is_err());
        assert!(Template::parse("${a, nobody}", true).is_err());
    }
}
