//! The port's attribute values to the SDK's and back. Numbers come back as DynamoDB wrote
//! them (`1e20`, `1.50`) and are parsed into the port's canonical form, so equal numbers
//! compare equal whichever store they came from.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Sdk;
use aws_smithy_types::Blob;
use stratus::ports::table::{AttributeValue, Item, Number, TableError};

/// A value the SDK holds that the port has no type for: a variant newer than this adapter,
/// or a number DynamoDB should never have stored.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB returned a value this adapter cannot read: {0}")]
pub(crate) struct UnreadableValue(String);

pub(crate) type SdkItem = HashMap<String, Sdk>;

pub(crate) fn to_sdk(value: &AttributeValue) -> Sdk {
    match value {
        AttributeValue::S(text) => Sdk::S(text.clone()),
        AttributeValue::N(number) => Sdk::N(number.as_str().to_owned()),
        AttributeValue::B(bytes) => Sdk::B(Blob::new(bytes.clone())),
        AttributeValue::Bool(value) => Sdk::Bool(*value),
        AttributeValue::Null(value) => Sdk::Null(*value),
        AttributeValue::L(list) => Sdk::L(list.iter().map(to_sdk).collect()),
        AttributeValue::M(map) => Sdk::M(item_to_sdk(map)),
        AttributeValue::Ss(set) => Sdk::Ss(set.iter().cloned().collect()),
        AttributeValue::Ns(set) => Sdk::Ns(set.iter().map(|number| number.as_str().to_owned()).collect()),
        AttributeValue::Bs(set) => Sdk::Bs(set.iter().map(|bytes| Blob::new(bytes.clone())).collect()),
    }
}

pub(crate) fn item_to_sdk(item: &Item) -> SdkItem {
    item.iter().map(|(name, value)| (name.clone(), to_sdk(value))).collect()
}

pub(crate) fn from_sdk(value: Sdk) -> Result<AttributeValue, TableError> {
    Ok(match value {
        Sdk::S(text) => AttributeValue::S(text),
        Sdk::N(text) => AttributeValue::N(number(&text)?),
        Sdk::B(blob) => AttributeValue::B(blob.into_inner()),
        Sdk::Bool(value) => AttributeValue::Bool(value),
        Sdk::Null(value) => AttributeValue::Null(value),
        Sdk::L(list) => AttributeValue::L(list.into_iter().map(from_sdk).collect::<Result<_, _>>()?),
        Sdk::M(map) => AttributeValue::M(item_from_sdk(map)?),
        Sdk::Ss(set) => AttributeValue::Ss(set.into_iter().collect()),
        Sdk::Ns(set) => AttributeValue::Ns(set.iter().map(|text| number(text)).collect::<Result<_, _>>()?),
        Sdk::Bs(set) => AttributeValue::Bs(set.into_iter().map(Blob::into_inner).collect()),
        other => return Err(TableError::storage(UnreadableValue(format!("{other:?}")))),
    })
}

pub(crate) fn item_from_sdk(item: SdkItem) -> Result<Item, TableError> {
    item.into_iter().map(|(name, value)| Ok((name, from_sdk(value)?))).collect()
}

fn number(text: &str) -> Result<Number, TableError> {
    Number::parse(text).map_err(|error| TableError::storage(UnreadableValue(error.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus::item;

    #[test]
    fn every_type_survives_the_round_trip_and_numbers_come_back_canonical() {
        let item = item! {
            "s" => "text", "n" => Number::parse("-1.5").expect("number"), "b" => AttributeValue::B(vec![0, 255]),
            "bool" => true, "null" => AttributeValue::Null(true),
            "l" => AttributeValue::L(vec![1.into(), "x".into()]),
            "m" => AttributeValue::M(item! { "inner" => 2 }),
            "ss" => AttributeValue::Ss(["a".to_owned()].into()),
            "ns" => AttributeValue::Ns([Number::parse("2").expect("number")].into()),
            "bs" => AttributeValue::Bs([vec![1]].into()),
        };
        assert_eq!(item_from_sdk(item_to_sdk(&item)).expect("readable"), item);
        let written_by_dynamodb = from_sdk(Sdk::N("1E+2".into())).expect("a number");
        assert_eq!(written_by_dynamodb, AttributeValue::from(100));
        assert!(from_sdk(Sdk::N("twelve".into())).is_err());
    }
}
