//! The port's typed conditions, updates and key conditions rendered as DynamoDB expression
//! strings. Every attribute name becomes a `#n` placeholder and every value a `:v` one, so no
//! name is mistaken for a reserved word and no value is ever spliced into the text.

use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue as Sdk;
use stratus::ports::table::{
    AttributeValue, Comparison, Condition, Path, Segment, SetValue, SortCondition, UpdateAction, ValueType,
};

use super::values::to_sdk;

/// `ExpressionAttributeNames`: placeholder → attribute name.
pub(crate) type Names = HashMap<String, String>;
/// `ExpressionAttributeValues`: placeholder → value.
pub(crate) type Values = HashMap<String, Sdk>;

/// A rendered condition, and whether it is an AND or OR at its top (an operand then needs
/// parentheses).
struct Rendered {
    text: String,
    compound: bool,
}

/// The placeholders of one request, shared by all its expressions (a request's condition,
/// update and key condition draw from the same two maps).
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    /// Attribute name → placeholder, so a name used twice has one placeholder.
    names: HashMap<String, String>,
    values: Values,
}

impl Placeholders {
    /// `ExpressionAttributeNames` and `ExpressionAttributeValues`, `None` when empty (DynamoDB
    /// refuses empty maps).
    pub(crate) fn into_maps(self) -> (Option<Names>, Option<Values>) {
        let names =
            self.names.into_iter().map(|(name, placeholder)| (placeholder, name)).collect::<HashMap<_, _>>();
        ((!names.is_empty()).then_some(names), (!self.values.is_empty()).then_some(self.values))
    }

    fn name(&mut self, name: &str) -> String {
        let next = self.names.len();
        self.names.entry(name.to_owned()).or_insert_with(|| format!("#n{next}")).clone()
    }

    fn value(&mut self, value: &AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), to_sdk(value));
        placeholder
    }

    fn path(&mut self, path: &Path) -> String {
        let mut text = self.name(path.attribute());
        for segment in path.segments() {
            match segment {
                Segment::Key(key) => {
                    let key = self.name(key);
                    text.push('.');
                    text.push_str(&key);
                }
                Segment::Index(index) => {
                    let _ = write!(text, "[{index}]");
                }
            }
        }
        text
    }

    /// A `ConditionExpression` (or `FilterExpression`).
    pub(crate) fn condition(&mut self, condition: &Condition) -> String {
        self.rendered(condition).text
    }

    fn rendered(&mut self, condition: &Condition) -> Rendered {
        let simple = |text: String| Rendered { text, compound: false };
        match condition {
            Condition::AttributeExists(path) => simple(format!("attribute_exists({})", self.path(path))),
            Condition::AttributeNotExists(path) => {
                simple(format!("attribute_not_exists({})", self.path(path)))
            }
            Condition::Compare(path, op, value) => {
                let operator = match op {
                    Comparison::Eq => "=",
                    Comparison::Ne => "<>",
                    Comparison::Lt => "<",
                    Comparison::Le => "<=",
                    Comparison::Gt => ">",
                    Comparison::Ge => ">=",
                };
                let compared = format!("{} {operator} {}", self.path(path), self.value(value));
                match op {
                    Comparison::Eq | Comparison::Ne => simple(compared),
                    _ => self.typed(path, value, compared),
                }
            }
            Condition::Between(path, low, high) => {
                let compared =
                    format!("{} BETWEEN {} AND {}", self.path(path), self.value(low), self.value(high));
                self.typed(path, low, compared)
            }
            Condition::BeginsWith(path, prefix) => {
                simple(format!("begins_with({}, {})", self.path(path), self.value(prefix)))
            }
            Condition::Contains(path, needle) => {
                simple(format!("contains({}, {})", self.path(path), self.value(needle)))
            }
            // DynamoDB has no literals: an empty AND is true, an empty OR false, written as a
            // tautology or contradiction on an attribute name that needs no meaning.
            Condition::And(all) if all.is_empty() => self.constant(true),
            Condition::Or(any) if any.is_empty() => self.constant(false),
            Condition::And(all) => self.joined(all, " AND "),
            Condition::Or(any) => self.joined(any, " OR "),
            Condition::Not(inner) => simple(format!("NOT {}", self.operand(inner))),
        }
    }

    /// A condition as an operand of AND, OR or NOT: in parentheses when it is compound, and
    /// only then (DynamoDB refuses redundant parentheses).
    fn operand(&mut self, condition: &Condition) -> String {
        let rendered = self.rendered(condition);
        if rendered.compound { format!("({})", rendered.text) } else { rendered.text }
    }

    /// An ordered comparison guarded by the attribute's type. DynamoDB answers false for an
    /// attribute of another type anyway; the guard says so explicitly, which emulators need
    /// (moto fails with a server error comparing a number with a string).
    fn typed(&mut self, path: &Path, value: &AttributeValue, compared: String) -> Rendered {
        let kind = value.value_type();
        if !matches!(kind, ValueType::S | ValueType::N | ValueType::B) {
            return Rendered { text: compared, compound: false };
        }
        let kind = self.value(&AttributeValue::S(kind.to_string()));
        Rendered {
            text: format!("attribute_type({}, {kind}) AND {compared}", self.path(path)),
            compound: true,
        }
    }

    fn joined(&mut self, conditions: &[Condition], operator: &str) -> Rendered {
        if let [only] = conditions {
            return self.rendered(only);
        }
        let parts: Vec<String> = conditions.iter().map(|condition| self.operand(condition)).collect();
        Rendered { text: parts.join(operator), compound: true }
    }

    fn constant(&mut self, truth: bool) -> Rendered {
        let name = self.name("stratus:constant");
        let text = if truth {
            format!("attribute_exists({name}) OR attribute_not_exists({name})")
        } else {
            format!("attribute_exists({name}) AND attribute_not_exists({name})")
        };
        Rendered { text, compound: true }
    }

    /// An `UpdateExpression`; `None` when there is nothing to update (an `UpdateItem` without one
    /// still creates a missing item from its key, as the port's update does).
    pub(crate) fn update(&mut self, actions: &[UpdateAction]) -> Option<String> {
        let (mut set, mut remove, mut add, mut delete) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for action in actions {
            match action {
                UpdateAction::Set(path, value) => {
                    let target = self.path(path);
                    let source = match value {
                        SetValue::Value(value) => self.value(value),
                        SetValue::IfNotExists(value) => {
                            format!("if_not_exists({target}, {})", self.value(value))
                        }
                        SetValue::Increment(delta) => {
                            format!("{target} + {}", self.value(&delta.clone().into()))
                        }
                        SetValue::Decrement(delta) => {
                            format!("{target} - {}", self.value(&delta.clone().into()))
                        }
                        SetValue::ListAppend(values) => {
                            let empty = self.value(&AttributeValue::L(Vec::new()));
                            let appended = self.value(&AttributeValue::L(values.clone()));
                            format!("list_append(if_not_exists({target}, {empty}), {appended})")
                        }
                    };
                    set.push(format!("{target} = {source}"));
                }
                UpdateAction::Remove(path) => remove.push(self.path(path)),
                UpdateAction::Add(path, value) => {
                    add.push(format!("{} {}", self.path(path), self.value(value)));
                }
                UpdateAction::Delete(path, value) => {
                    delete.push(format!("{} {}", self.path(path), self.value(value)));
                }
            }
        }
        let clauses: Vec<String> = [("SET", set), ("REMOVE", remove), ("ADD", add), ("DELETE", delete)]
            .into_iter()
            .filter(|(_, parts)| !parts.is_empty())
            .map(|(keyword, parts)| format!("{keyword} {}", parts.join(", ")))
            .collect();
        (!clauses.is_empty()).then(|| clauses.join(" "))
    }

    /// An update that changes nothing but still creates a missing item from its key, for where
    /// an expression is required (a transaction): it removes an attribute no item has.
    pub(crate) fn no_op_update(&mut self) -> String {
        format!("REMOVE {}", self.name("stratus:nothing"))
    }

    /// A query's `KeyConditionExpression`.
    pub(crate) fn key_condition(
        &mut self,
        partition_key: &str,
        partition: &AttributeValue,
        sort: Option<(&str, &SortCondition)>,
    ) -> String {
        let mut text = format!("{} = {}", self.name(partition_key), self.value(partition));
        if let Some((sort_key, condition)) = sort {
            let name = self.name(sort_key);
            let rendered = match condition {
                SortCondition::Eq(value) => format!("{name} = {}", self.value(value)),
                SortCondition::Lt(value) => format!("{name} < {}", self.value(value)),
                SortCondition::Le(value) => format!("{name} <= {}", self.value(value)),
                SortCondition::Gt(value) => format!("{name} > {}", self.value(value)),
                SortCondition::Ge(value) => format!("{name} >= {}", self.value(value)),
                SortCondition::Between(low, high) => {
                    format!("{name} BETWEEN {} AND {}", self.value(low), self.value(high))
                }
                SortCondition::BeginsWith(prefix) => format!("begins_with({name}, {})", self.value(prefix)),
            };
            text.push_str(" AND ");
            text.push_str(&rendered);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_placeholders_reused_across_expressions() {
        let mut placeholders = Placeholders::default();
        let condition = placeholders.condition(
            &Condition::eq(Path::attr("size").key("a.b").index(2), "x").and(Condition::not_exists("size")),
        );
        assert_eq!(condition, "#n0.#n1[2] = :v0 AND attribute_not_exists(#n0)");
        let update = placeholders
            .update(&[UpdateAction::set("size", 1), UpdateAction::remove("gone"), UpdateAction::add("n", 2)])
            .expect("an update");
        assert_eq!(update, "SET #n0 = :v1 REMOVE #n2 ADD #n3 :v2");
        let (names, values) = placeholders.into_maps();
        let names = names.expect("names");
        assert_eq!(names["#n1"], "a.b", "a dotted name stays one name");
        assert_eq!(names.len(), 4);
        assert_eq!(values.expect("values").len(), 3);
        assert_eq!(Placeholders::default().update(&[]), None);
    }

    #[test]
    fn ordered_comparisons_are_guarded_by_type_and_nested_ones_parenthesised_once() {
        let mut placeholders = Placeholders::default();
        let condition = Condition::compare("n", Comparison::Gt, 4).or(Condition::eq("s", "x"));
        assert_eq!(
            placeholders.condition(&Condition::Not(Box::new(condition))),
            "NOT ((attribute_type(#n0, :v1) AND #n0 > :v0) OR #n1 = :v2)"
        );
        let (_, values) = placeholders.into_maps();
        assert_eq!(values.expect("values")[":v1"], Sdk::S("N".into()));
    }

    #[test]
    fn key_conditions_and_constants_render_as_dynamodb_reads_them() {
        let mut placeholders = Placeholders::default();
        let between = SortCondition::Between("a".into(), "b".into());
        assert_eq!(
            placeholders.key_condition("pk", &"p".into(), Some(("sk", &between))),
            "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"
        );
        assert_eq!(
            placeholders.condition(&Condition::Not(Box::new(Condition::Or(Vec::new())))),
            "NOT (attribute_exists(#n2) AND attribute_not_exists(#n2))"
        );
    }
}
