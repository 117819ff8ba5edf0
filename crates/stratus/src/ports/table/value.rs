//! DynamoDB's data model: attribute values, exact decimal numbers and items. The serde form is
//! DynamoDB's JSON (`{"S": "text"}`, `{"N": "1.5"}`, …), so stream records and cursors read the
//! same here and on AWS.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use bigdecimal::BigDecimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An item: attribute name → value.
pub type Item = BTreeMap<String, AttributeValue>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    #[serde(rename = "S")]
    S(String),
    #[serde(rename = "N")]
    N(Number),
    #[serde(rename = "B", with = "base64_bytes")]
    B(Vec<u8>),
    #[serde(rename = "BOOL")]
    Bool(bool),
    /// DynamoDB's `{"NULL": true}`.
    #[serde(rename = "NULL")]
    Null(bool),
    #[serde(rename = "L")]
    L(Vec<AttributeValue>),
    #[serde(rename = "M")]
    M(BTreeMap<String, AttributeValue>),
    #[serde(rename = "SS")]
    Ss(BTreeSet<String>),
    #[serde(rename = "NS")]
    Ns(BTreeSet<Number>),
    #[serde(rename = "BS", with = "base64_byte_set")]
    Bs(BTreeSet<Vec<u8>>),
}

/// The type descriptor of a value, as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    S,
    N,
    B,
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "NULL")]
    Null,
    L,
    M,
    #[serde(rename = "SS")]
    Ss,
    #[serde(rename = "NS")]
    Ns,
    #[serde(rename = "BS")]
    Bs,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::S => "S",
            Self::N => "N",
            Self::B => "B",
            Self::Bool => "BOOL",
            Self::Null => "NULL",
            Self::L => "L",
            Self::M => "M",
            Self::Ss => "SS",
            Self::Ns => "NS",
            Self::Bs => "BS",
        };
        f.write_str(name)
    }
}

impl AttributeValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::S(_) => ValueType::S,
            Self::N(_) => ValueType::N,
            Self::B(_) => ValueType::B,
            Self::Bool(_) => ValueType::Bool,
            Self::Null(_) => ValueType::Null,
            Self::L(_) => ValueType::L,
            Self::M(_) => ValueType::M,
            Self::Ss(_) => ValueType::Ss,
            Self::Ns(_) => ValueType::Ns,
            Self::Bs(_) => ValueType::Bs,
        }
    }

    pub fn as_s(&self) -> Option<&str> {
        match self {
            Self::S(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_n(&self) -> Option<&Number> {
        match self {
            Self::N(number) => Some(number),
            _ => None,
        }
    }

    pub fn as_b(&self) -> Option<&[u8]> {
        match self {
            Self::B(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_m(&self) -> Option<&BTreeMap<String, AttributeValue>> {
        match self {
            Self::M(map) => Some(map),
            _ => None,
        }
    }

    pub fn as_l(&self) -> Option<&[AttributeValue]> {
        match self {
            Self::L(list) => Some(list),
            _ => None,
        }
    }

    /// Size in bytes by DynamoDB's accounting rules (used for the 400 KB item limit).
    pub fn size(&self) -> usize {
        match self {
            Self::S(text) => text.len(),
            Self::N(number) => number.size(),
            Self::B(bytes) => bytes.len(),
            Self::Bool(_) | Self::Null(_) => 1,
            Self::L(list) => 3 + list.iter().map(|value| value.size() + 1).sum::<usize>(),
            Self::M(map) => 3 + map.iter().map(|(name, value)| name.len() + value.size() + 1).sum::<usize>(),
            Self::Ss(set) => set.iter().map(String::len).sum(),
            Self::Ns(set) => set.iter().map(Number::size).sum(),
            Self::Bs(set) => set.iter().map(Vec::len).sum(),
        }
    }

    /// Compares two values for conditions: strings and binaries by bytes, numbers numerically;
    /// `None` when the types differ or are not ordered.
    pub fn partial_compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::S(a), Self::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Self::N(a), Self::N(b)) => Some(a.cmp(b)),
            (Self::B(a), Self::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Size of an item by DynamoDB's rules: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value.size()).sum()
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::S(value.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::S(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<Number> for AttributeValue {
    fn from(value: Number) -> Self {
        Self::N(value)
    }
}

impl From<Vec<u8>> for AttributeValue {
    fn from(value: Vec<u8>) -> Self {
        Self::B(value)
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for AttributeValue {
            fn from(value: $t) -> Self {
                Self::N(Number::from(value))
            }
        }
        impl From<$t> for Number {
            fn from(value: $t) -> Self {
                Number(value.to_string())
            }
        }
    )*};
}
from_integer!(i32, i64, u32, u64, usize);

/// Builds an [`Item`]: `item! { "pk" => "user#1", "age" => 42 }`.
#[macro_export]
macro_rules! item {
    ($($name:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut item = $crate::ports::table::Item::new();
        $(item.insert(::std::string::String::from($name), $crate::ports::table::AttributeValue::from($value));)*
        item
    }};
}

/// An exact decimal number with DynamoDB's limits: up to 38 significant digits, magnitude
/// between 1e-130 and 1e126. Kept in canonical text form (no exponent, no redundant zeros), so
/// equal numbers have equal representations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` has more than 38 significant digits")]
    TooPrecise(String),
    #[error("`{0}` is outside the range 1e-130 to 1e126")]
    OutOfRange(String),
}

const MAX_PRECISION: u64 = 38;

/// Whether `text` is an integer exactly as normalisation writes it (`0`, `-12`, never `012`,
/// `+1` or `-0`), within the precision: most numbers are, and they need no decimal arithmetic.
fn is_canonical_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let bytes = digits.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PRECISION as usize
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || (bytes.len() == 1 && digits.len() == text.len()))
}
const MIN_EXPONENT: i64 = -130;
const MAX_EXPONENT: i64 = 125;

impl Number {
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        if is_canonical_integer(text) {
            return Ok(Self(text.to_owned()));
        }
        let trimmed = text.trim();
        let looks_numeric = !trimmed.is_empty()
            && trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
            && trimmed.chars().any(|c| c.is_ascii_digit());
        if !looks_numeric {
            return Err(NumberError::NotANumber(text.to_owned()));
        }
        let decimal = BigDecimal::from_str(trimmed).map_err(|_| NumberError::NotANumber(text.to_owned()))?;
        Self::from_decimal(&decimal).map_err(|e| match e {
            NumberError::TooPrecise(_) => NumberError::TooPrecise(text.to_owned()),
            NumberError::OutOfRange(_) => NumberError::OutOfRange(text.to_owned()),
            other => other,
        })
    }

    fn from_decimal(decimal: &BigDecimal) -> Result<Self, NumberError> {
        let normalized = decimal.normalized();
        if normalized.digits() > MAX_PRECISION {
            return Err(NumberError::TooPrecise(normalized.to_string()));
        }
        if normalized != 0 {
            let (_, exponent) = normalized.as_bigint_and_exponent();
            // value = digits × 10^(-exponent); adjusted exponent of the leading digit:
            let adjusted = normalized.digits() as i64 - 1 - exponent;
            if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&adjusted) {
                return Err(NumberError::OutOfRange(normalized.to_string()));
            }
        }
        Ok(Self(normalized.to_plain_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_decimal(&self) -> BigDecimal {
        // The text was produced by BigDecimal itself, so it always parses back.
        BigDecimal::from_str(&self.0).unwrap_or_default()
    }

    pub fn checked_add(&self, other: &Number) -> Result<Number, NumberError> {
        Self::from_decimal(&(self.to_decimal() + other.to_decimal()))
    }

    pub fn checked_sub(&self, other: &Number) -> Result<Number, NumberError> {
        Self::from_decimal(&(self.to_decimal() - other.to_decimal()))
    }

    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }

    /// The significant digits (no leading or trailing zeros) and the exponent `e` such that
    /// |value| = 0.d₁d₂… × 10^e. Zero yields no digits.
    pub fn scientific_parts(&self) -> (Vec<u8>, i64) {
        let unsigned = self.0.trim_start_matches('-');
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let all: Vec<u8> = whole.bytes().chain(fraction.bytes()).map(|b| b - b'0').collect();
        let leading_zeros = all.iter().take_while(|&&d| d == 0).count();
        let mut digits = all[leading_zeros..].to_vec();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return (digits, 0);
        }
        let exponent = whole.len() as i64 - leading_zeros as i64;
        (digits, exponent)
    }

    /// DynamoDB's size rule: roughly one byte per two significant digits, plus one.
    pub(crate) fn size(&self) -> usize {
        let (digits, _) = self.scientific_parts();
        digits.len().div_ceil(2) + 1 + usize::from(self.is_negative())
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            return Ordering::Equal;
        }
        self.to_decimal().cmp(&other.to_decimal())
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Number {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Number::parse(&text).map_err(serde::de::Error::custom)
    }
}

mod base64_bytes {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

mod base64_byte_set {
    use std::collections::BTreeSet;

    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        set: &BTreeSet<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(set.iter().map(|bytes| BASE64.encode(bytes)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeSet<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts.into_iter().map(|text| BASE64.decode(text).map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_canonical_and_exact() {
        assert_eq!(Number::parse("1.50").unwrap().as_str(), "1.5");
        assert_eq!(Number::parse("+0010").unwrap().as_str(), "10");
        assert_eq!(Number::parse("1e3").unwrap().as_str(), "1000");
        assert_eq!(Number::parse("-0.000").unwrap().as_str(), "0");
        let precise = "12345678901234567890123456789012345678";
        assert_eq!(Number::parse(precise).unwrap().as_str(), precise);
        let sum = Number::parse("0.1").unwrap().checked_add(&Number::parse("0.2").unwrap()).unwrap();
        assert_eq!(sum.as_str(), "0.3");
    }

    #[test]
    fn the_integer_shortcut_agrees_with_decimal_normalisation() {
        let precise = "9".repeat(38);
        let too_precise = "9".repeat(39);
        for text in
            ["0", "-0", "7", "-12", "007", "-007", "+5", "10", "1e2", precise.as_str(), too_precise.as_str()]
        {
            let slow = BigDecimal::from_str(text)
                .map_err(|_| ())
                .and_then(|d| Number::from_decimal(&d).map_err(|_| ()));
            assert_eq!(Number::parse(text).map_err(|_| ()), slow, "{text}");
        }
    }

    #[test]
    fn numbers_outside_dynamodb_limits_are_refused() {
        assert!(matches!(Number::parse("abc"), Err(NumberError::NotANumber(_))));
        assert!(matches!(Number::parse(""), Err(NumberError::NotANumber(_))));
        assert!(matches!(Number::parse("NaN"), Err(NumberError::NotANumber(_))));
        assert!(matches!(
            Number::parse("123456789012345678901234567890123456789"),
            Err(NumberError::TooPrecise(_))
        ));
        assert!(matches!(Number::parse("1e126"), Err(NumberError::OutOfRange(_))));
        assert!(matches!(Number::parse("1e-131"), Err(NumberError::OutOfRange(_))));
        assert!(Number::parse("9.9e125").is_ok());
        assert!(Number::parse("1e-130").is_ok());
    }

    #[test]
    fn scientific_parts_split_digits_and_exponent() {
        assert_eq!(Number::parse("123.45").unwrap().scientific_parts(), (vec![1, 2, 3, 4, 5], 3));
        assert_eq!(Number::parse("0.0012").unwrap().scientific_parts(), (vec![1, 2], -2));
        assert_eq!(Number::parse("-500").unwrap().scientific_parts(), (vec![5], 3));
        assert_eq!(Number::parse("0").unwrap().scientific_parts(), (vec![], 0));
    }

    #[test]
    fn values_serialize_as_dynamodb_json() {
        let item = crate::item! { "name" => "ada", "age" => 36, "raw" => vec![1u8, 2, 3] };
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(json, r#"{"age":{"N":"36"},"name":{"S":"ada"},"raw":{"B":"AQID"}}"#);
        let back: Item = serde_json::from_str(&json).unwrap();
        assert_eq!(back, item);
    }
}
