//! Conditions and update actions, as typed values rather than DynamoDB's expression strings:
//! the adapters turn them into whatever their store speaks (SQLite evaluates them in Rust, the
//! DynamoDB adapter renders `ConditionExpression`/`UpdateExpression` with placeholders).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use super::value::{AttributeValue, Item, Number, NumberError};

/// A document path: a top-level attribute, then map keys and list indexes (`a.b[2]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path {
    attribute: String,
    rest: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Path {
    /// A top-level attribute; its name is taken literally (dots included).
    pub fn attr(name: impl Into<String>) -> Self {
        Self { attribute: name.into(), rest: Vec::new() }
    }

    /// Descends into a map.
    #[must_use]
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.rest.push(Segment::Key(name.into()));
        self
    }

    /// Descends into a list.
    #[must_use]
    pub fn index(mut self, index: usize) -> Self {
        self.rest.push(Segment::Index(index));
        self
    }

    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    pub fn segments(&self) -> &[Segment] {
        &self.rest
    }

    pub fn is_top_level(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn resolve<'a>(&self, item: &'a Item) -> Option<&'a AttributeValue> {
        let mut current = item.get(&self.attribute)?;
        for segment in &self.rest {
            current = match (segment, current) {
                (Segment::Key(name), AttributeValue::M(map)) => map.get(name)?,
                (Segment::Index(index), AttributeValue::L(list)) => list.get(*index)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// True when one path is the other or contains it.
    fn overlaps(&self, other: &Path) -> bool {
        self.attribute == other.attribute && self.rest.iter().zip(&other.rest).all(|(a, b)| a == b)
    }

    fn set(&self, item: &mut Item, value: AttributeValue) -> Result<(), UpdateError> {
        let Some((last, parents)) = self.rest.split_last() else {
            item.insert(self.attribute.clone(), value);
            return Ok(());
        };
        let invalid = || UpdateError::InvalidPath(self.to_string());
        let mut current = item.get_mut(&self.attribute).ok_or_else(invalid)?;
        for segment in parents {
            current = match (segment, current) {
                (Segment::Key(name), AttributeValue::M(map)) => map.get_mut(name).ok_or_else(invalid)?,
                (Segment::Index(index), AttributeValue::L(list)) => {
                    list.get_mut(*index).ok_or_else(invalid)?
                }
                _ => return Err(invalid()),
            };
        }
        match (last, current) {
            (Segment::Key(name), AttributeValue::M(map)) => {
                map.insert(name.clone(), value);
            }
            // As in DynamoDB, an index past the end appends.
            (Segment::Index(index), AttributeValue::L(list)) => match list.get_mut(*index) {
                Some(slot) => *slot = value,
                None => list.push(value),
            },
            _ => return Err(invalid()),
        }
        Ok(())
    }

    fn remove(&self, item: &mut Item) {
        let Some((last, parents)) = self.rest.split_last() else {
            item.remove(&self.attribute);
            return;
        };
        let Some(mut current) = item.get_mut(&self.attribute) else { return };
        for segment in parents {
            let next = match (segment, current) {
                (Segment::Key(name), AttributeValue::M(map)) => map.get_mut(name),
                (Segment::Index(index), AttributeValue::L(list)) => list.get_mut(*index),
                _ => None,
            };
            let Some(next) = next else { return };
            current = next;
        }
        match (last, current) {
            (Segment::Key(name), AttributeValue::M(map)) => {
                map.remove(name);
            }
            (Segment::Index(index), AttributeValue::L(list)) if *index < list.len() => {
                list.remove(*index);
            }
            _ => {}
        }
    }
}

impl From<&str> for Path {
    fn from(name: &str) -> Self {
        Self::attr(name)
    }
}

impl From<String> for Path {
    fn from(name: String) -> Self {
        Self::attr(name)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.attribute)?;
        for segment in &self.rest {
            match segment {
                Segment::Key(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition on an item, checked atomically with the write it guards.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    AttributeExists(Path),
    AttributeNotExists(Path),
    Compare(Path, Comparison, AttributeValue),
    Between(Path, AttributeValue, AttributeValue),
    /// The attribute is a string (or binary) starting with the given one.
    BeginsWith(Path, AttributeValue),
    /// A string contains a substring, or a set or list contains an element.
    Contains(Path, AttributeValue),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn exists(path: impl Into<Path>) -> Self {
        Self::AttributeExists(path.into())
    }

    pub fn not_exists(path: impl Into<Path>) -> Self {
        Self::AttributeNotExists(path.into())
    }

    pub fn eq(path: impl Into<Path>, value: impl Into<AttributeValue>) -> Self {
        Self::Compare(path.into(), Comparison::Eq, value.into())
    }

    pub fn compare(path: impl Into<Path>, op: Comparison, value: impl Into<AttributeValue>) -> Self {
        Self::Compare(path.into(), op, value.into())
    }

    pub fn begins_with(path: impl Into<Path>, prefix: impl Into<AttributeValue>) -> Self {
        Self::BeginsWith(path.into(), prefix.into())
    }

    #[must_use]
    pub fn and(self, other: Condition) -> Self {
        match self {
            Self::And(mut all) => {
                all.push(other);
                Self::And(all)
            }
            first => Self::And(vec![first, other]),
        }
    }

    #[must_use]
    pub fn or(self, other: Condition) -> Self {
        match self {
            Self::Or(mut any) => {
                any.push(other);
                Self::Or(any)
            }
            first => Self::Or(vec![first, other]),
        }
    }

    /// Evaluates against the current item (`None` when it does not exist).
    pub fn evaluate(&self, item: Option<&Item>) -> bool {
        let resolve = |path: &Path| item.and_then(|item| path.resolve(item));
        match self {
            Self::AttributeExists(path) => resolve(path).is_some(),
            Self::AttributeNotExists(path) => resolve(path).is_none(),
            // As in DynamoDB, a missing attribute is unequal to every value, and neither less
            // nor greater than any.
            Self::Compare(path, Comparison::Ne, _) if resolve(path).is_none() => true,
            Self::Compare(path, op, value) => resolve(path).is_some_and(|actual| compare(actual, *op, value)),
            Self::Between(path, low, high) => resolve(path).is_some_and(|actual| {
                compare(actual, Comparison::Ge, low) && compare(actual, Comparison::Le, high)
            }),
            Self::BeginsWith(path, prefix) => match (resolve(path), prefix) {
                (Some(AttributeValue::S(text)), AttributeValue::S(prefix)) => {
                    text.starts_with(prefix.as_str())
                }
                (Some(AttributeValue::B(bytes)), AttributeValue::B(prefix)) => bytes.starts_with(prefix),
                _ => false,
            },
            Self::Contains(path, needle) => match (resolve(path), needle) {
                (Some(AttributeValue::S(text)), AttributeValue::S(part)) => text.contains(part.as_str()),
                (Some(AttributeValue::Ss(set)), AttributeValue::S(element)) => set.contains(element),
                (Some(AttributeValue::Ns(set)), AttributeValue::N(element)) => set.contains(element),
                (Some(AttributeValue::Bs(set)), AttributeValue::B(element)) => set.contains(element),
                (Some(AttributeValue::L(list)), element) => list.contains(element),
                _ => false,
            },
            Self::And(all) => all.iter().all(|condition| condition.evaluate(item)),
            Self::Or(any) => any.iter().any(|condition| condition.evaluate(item)),
            Self::Not(inner) => !inner.evaluate(item),
        }
    }
}

fn compare(actual: &AttributeValue, op: Comparison, expected: &AttributeValue) -> bool {
    match op {
        Comparison::Eq => actual == expected,
        Comparison::Ne => actual != expected,
        ordered => match actual.partial_compare(expected) {
            None => false,
            Some(ordering) => match ordered {
                Comparison::Lt => ordering == Ordering::Less,
                Comparison::Le => ordering != Ordering::Greater,
                Comparison::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            },
        },
    }
}

/// One action of an update, as in DynamoDB's `SET`, `REMOVE`, `ADD` and `DELETE` clauses.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    Set(Path, SetValue),
    Remove(Path),
    /// Adds to a number (missing counts as 0) or unions into a set (top-level only).
    Add(Path, AttributeValue),
    /// Removes elements from a set; an emptied set disappears (top-level only).
    Delete(Path, AttributeValue),
}

impl UpdateAction {
    pub fn set(path: impl Into<Path>, value: impl Into<AttributeValue>) -> Self {
        Self::Set(path.into(), SetValue::Value(value.into()))
    }

    pub fn remove(path: impl Into<Path>) -> Self {
        Self::Remove(path.into())
    }

    pub fn add(path: impl Into<Path>, value: impl Into<AttributeValue>) -> Self {
        Self::Add(path.into(), value.into())
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Set(path, _) | Self::Remove(path) | Self::Add(path, _) | Self::Delete(path, _) => path,
        }
    }

    /// The bytes the action carries: its attribute's name and the values it writes.
    pub fn size(&self) -> usize {
        let values = match self {
            Self::Set(_, SetValue::Value(value) | SetValue::IfNotExists(value))
            | Self::Add(_, value)
            | Self::Delete(_, value) => value.size(),
            Self::Set(_, SetValue::Increment(number) | SetValue::Decrement(number)) => number.size(),
            Self::Set(_, SetValue::ListAppend(values)) => values.iter().map(AttributeValue::size).sum(),
            Self::Remove(_) => 0,
        };
        self.path().attribute().len() + values
    }
}

/// The right-hand side of a `SET`.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Value(AttributeValue),
    /// `if_not_exists(path, value)`: keeps the current value when there is one.
    IfNotExists(AttributeValue),
    /// `path + n`: the attribute must exist and be a number.
    Increment(Number),
    /// `path - n`: the attribute must exist and be a number.
    Decrement(Number),
    /// `list_append(path, values)`; a missing list counts as empty.
    ListAppend(Vec<AttributeValue>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("the document path `{0}` is invalid for update")]
    InvalidPath(String),
    #[error("two actions touch overlapping paths `{0}` and `{1}`")]
    OverlappingPaths(String, String),
    #[error("`{path}` {problem}")]
    WrongOperand { path: String, problem: &'static str },
    #[error("arithmetic on `{path}` overflows")]
    Arithmetic {
        path: String,
        #[source]
        source: NumberError,
    },
}

/// Checks that no two actions touch overlapping paths (DynamoDB refuses such updates).
pub(crate) fn check_disjoint(actions: &[UpdateAction]) -> Result<(), UpdateError> {
    for (position, action) in actions.iter().enumerate() {
        for other in &actions[position + 1..] {
            if action.path().overlaps(other.path()) {
                return Err(UpdateError::OverlappingPaths(
                    action.path().to_string(),
                    other.path().to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that `ADD` and `DELETE` name top-level attributes, as DynamoDB requires.
pub(crate) fn check_top_level(actions: &[UpdateAction]) -> Result<(), UpdateError> {
    for action in actions {
        let problem = match action {
            UpdateAction::Add(..) => "ADD applies to top-level attributes only",
            UpdateAction::Delete(..) => "DELETE applies to top-level attributes only",
            _ => continue,
        };
        if !action.path().is_top_level() {
            return Err(UpdateError::WrongOperand { path: action.path().to_string(), problem });
        }
    }
    Ok(())
}

/// Applies `actions` to `item` in order; on error `item` may be partly changed, so callers
/// apply to a copy.
pub(crate) fn apply(item: &mut Item, actions: &[UpdateAction]) -> Result<(), UpdateError> {
    check_disjoint(actions)?;
    check_top_level(actions)?;
    for action in actions {
        match action {
            UpdateAction::Set(path, value) => {
                let new_value = evaluate_set(item, path, value)?;
                if let Some(new_value) = new_value {
                    path.set(item, new_value)?;
                }
            }
            UpdateAction::Remove(path) => path.remove(item),
            UpdateAction::Add(path, operand) => apply_add(item, path, operand)?,
            UpdateAction::Delete(path, operand) => apply_delete(item, path, operand)?,
        }
    }
    Ok(())
}

fn evaluate_set(item: &Item, path: &Path, value: &SetValue) -> Result<Option<AttributeValue>, UpdateError> {
    let current = path.resolve(item);
    let wrong = |problem| UpdateError::WrongOperand { path: path.to_string(), problem };
    let arithmetic = |source| UpdateError::Arithmetic { path: path.to_string(), source };
    Ok(Some(match value {
        SetValue::Value(value) => value.clone(),
        SetValue::IfNotExists(value) => match current {
            Some(_) => return Ok(None),
            None => value.clone(),
        },
        SetValue::Increment(delta) | SetValue::Decrement(delta) => {
            let Some(AttributeValue::N(number)) = current else {
                return Err(wrong("must be an existing number for arithmetic"));
            };
            let result = if matches!(value, SetValue::Increment(_)) {
                number.checked_add(delta)
            } else {
                number.checked_sub(delta)
            };
            AttributeValue::N(result.map_err(arithmetic)?)
        }
        SetValue::ListAppend(values) => match current {
            None => AttributeValue::L(values.clone()),
            Some(AttributeValue::L(list)) => AttributeValue::L(list.iter().chain(values).cloned().collect()),
            Some(_) => return Err(wrong("must be a list for list_append")),
        },
    }))
}

fn apply_add(item: &mut Item, path: &Path, operand: &AttributeValue) -> Result<(), UpdateError> {
    let wrong = |problem| UpdateError::WrongOperand { path: path.to_string(), problem };
    let name = path.attribute().to_owned();
    let merged = match (item.get(&name), operand) {
        (
            None,
            AttributeValue::N(_) | AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_),
        ) => operand.clone(),
        (Some(AttributeValue::N(current)), AttributeValue::N(delta)) => AttributeValue::N(
            current
                .checked_add(delta)
                .map_err(|source| UpdateError::Arithmetic { path: path.to_string(), source })?,
        ),
        (Some(AttributeValue::Ss(current)), AttributeValue::Ss(more)) => {
            AttributeValue::Ss(current.union(more).cloned().collect())
        }
        (Some(AttributeValue::Ns(current)), AttributeValue::Ns(more)) => {
            AttributeValue::Ns(current.union(more).cloned().collect())
        }
        (Some(AttributeValue::Bs(current)), AttributeValue::Bs(more)) => {
            AttributeValue::Bs(current.union(more).cloned().collect())
        }
        _ => return Err(wrong("ADD needs a number or a set of the attribute's type")),
    };
    item.insert(name, merged);
    Ok(())
}

fn apply_delete(item: &mut Item, path: &Path, operand: &AttributeValue) -> Result<(), UpdateError> {
    let wrong = |problem| UpdateError::WrongOperand { path: path.to_string(), problem };
    let name = path.attribute();
    let remaining = match (item.get(name), operand) {
        (None, AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)) => return Ok(()),
        (Some(AttributeValue::Ss(current)), AttributeValue::Ss(gone)) => {
            difference(current, gone).map(AttributeValue::Ss)
        }
        (Some(AttributeValue::Ns(current)), AttributeValue::Ns(gone)) => {
            difference(current, gone).map(AttributeValue::Ns)
        }
        (Some(AttributeValue::Bs(current)), AttributeValue::Bs(gone)) => {
            difference(current, gone).map(AttributeValue::Bs)
        }
        _ => return Err(wrong("DELETE needs a set of the attribute's type")),
    };
    match remaining {
        Some(set) => item.insert(name.to_owned(), set),
        None => item.remove(name),
    };
    Ok(())
}

fn difference<T: Ord + Clone>(current: &BTreeSet<T>, gone: &BTreeSet<T>) -> Option<BTreeSet<T>> {
    let left: BTreeSet<T> = current.difference(gone).cloned().collect();
    (!left.is_empty()).then_some(left)
}
