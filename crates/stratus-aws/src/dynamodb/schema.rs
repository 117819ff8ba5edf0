//! The DynamoDB table a [`TableSpec`] describes: checked against what exists, or created for
//! development and tests (on AWS the SAM template creates it).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType as SdkKeyType,
    Projection as SdkProjection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, TimeToLiveSpecification,
};
use stratus::ports::table::{IndexSpec, KeyAttribute, KeyType, Projection, TableError, TableSpec};

/// How long a created table may take to become active.
const CREATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What to do when the table does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    /// Refuse: the deployment creates tables (the SAM template).
    Fail,
    /// Create it on demand, with streams on (development, tests).
    Create,
}

/// The attributes an index holds on DynamoDB: the declared ones plus the TTL attribute, so a
/// query on the index can drop items that have expired but are not yet deleted (the adapter
/// removes it again from what it returns when it was not declared).
pub(crate) fn stored_projection(spec: &TableSpec, index: &IndexSpec) -> Projection {
    let ttl = spec.ttl_attribute.iter().cloned();
    match &index.projection {
        Projection::All => Projection::All,
        Projection::KeysOnly => match &spec.ttl_attribute {
            Some(ttl) => Projection::Include(vec![ttl.clone()]),
            None => Projection::KeysOnly,
        },
        Projection::Include(names) => {
            let all: BTreeSet<String> = names.iter().cloned().chain(ttl).collect();
            Projection::Include(all.into_iter().collect())
        }
    }
}

/// Checks that `table_name` exists with the key schema `spec` declares, creating it when asked.
pub(crate) async fn ensure(
    client: &Client,
    table_name: &str,
    spec: &TableSpec,
    when_missing: WhenMissing,
) -> Result<(), TableError> {
    match client.describe_table().table_name(table_name).send().await {
        Ok(output) => {
            let matches =
                output.table.is_some_and(|table| shape_of_description(&table) == shape_of_spec(spec));
            if !matches {
                return Err(TableError::SchemaMismatch { table: table_name.to_owned() });
            }
            Ok(())
        }
        Err(error)
            if error.code() == Some("ResourceNotFoundException") && when_missing == WhenMissing::Create =>
        {
            create(client, table_name, spec).await
        }
        Err(error) => Err(TableError::storage(error)),
    }
}

async fn create(client: &Client, table_name: &str, spec: &TableSpec) -> Result<(), TableError> {
    let mut request = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&spec.partition_key, spec.sort_key.as_ref())))
        .set_attribute_definitions(Some(attribute_definitions(spec)))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(TableError::storage)?,
        );
    for index in &spec.indexes {
        let projection = sdk_projection(&stored_projection(spec, index));
        let index = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&index.partition_key, index.sort_key.as_ref())))
            .projection(projection)
            .build()
            .map_err(TableError::storage)?;
        request = request.global_secondary_indexes(index);
    }
    match request.send().await {
        Ok(_) => {}
        // Another process created it first: fine if it is the same table.
        Err(error) if error.code() == Some("ResourceInUseException") => {}
        Err(error) => return Err(TableError::storage(error)),
    }
    client
        .wait_until_table_exists()
        .table_name(table_name)
        .wait(CREATION_TIMEOUT)
        .await
        .map_err(TableError::storage)?;
    if let Some(attribute) = &spec.ttl_attribute {
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attribute)
            .build()
            .map_err(TableError::storage)?;
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(TableError::storage)?;
    }
    tracing::info!(table = table_name, "created the DynamoDB table");
    Ok(())
}

fn key_schema(partition: &KeyAttribute, sort: Option<&KeyAttribute>) -> Vec<KeySchemaElement> {
    let element = |attribute: &KeyAttribute, kind| {
        KeySchemaElement::builder().attribute_name(&attribute.name).key_type(kind).build()
    };
    std::iter::once(element(partition, SdkKeyType::Hash))
        .chain(sort.map(|sort| element(sort, SdkKeyType::Range)))
        .filter_map(Result::ok)
        .collect()
}

/// Every key attribute of the table and its indexes, once each.
fn key_attributes(spec: &TableSpec) -> Vec<&KeyAttribute> {
    let mut attributes: Vec<&KeyAttribute> = Vec::new();
    let indexes =
        spec.indexes.iter().flat_map(|index| std::iter::once(&index.partition_key).chain(&index.sort_key));
    for attribute in std::iter::once(&spec.partition_key).chain(&spec.sort_key).chain(indexes) {
        if !attributes.iter().any(|known| known.name == attribute.name) {
            attributes.push(attribute);
        }
    }
    attributes
}

fn attribute_definitions(spec: &TableSpec) -> Vec<AttributeDefinition> {
    key_attributes(spec)
        .into_iter()
        .filter_map(|attribute| {
            let kind = match attribute.kind {
                KeyType::S => ScalarAttributeType::S,
                KeyType::N => ScalarAttributeType::N,
                KeyType::B => ScalarAttributeType::B,
            };
            AttributeDefinition::builder().attribute_name(&attribute.name).attribute_type(kind).build().ok()
        })
        .collect()
}

fn sdk_projection(projection: &Projection) -> SdkProjection {
    match projection {
        Projection::All => SdkProjection::builder().projection_type(ProjectionType::All).build(),
        Projection::KeysOnly => SdkProjection::builder().projection_type(ProjectionType::KeysOnly).build(),
        Projection::Include(names) => SdkProjection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.clone()))
            .build(),
    }
}

/// A table's key schema as comparable lines: `table HASH pk S`, `index by_status RANGE created N`,
/// `index titles INCLUDE expires,title`.
pub type Shape = BTreeSet<String>;

/// The key schema DynamoDB must have for `spec`, as the adapter compares it.
pub fn shape_of_spec(spec: &TableSpec) -> Shape {
    let mut shape = Shape::new();
    let mut keys = |owner: &str, partition: &KeyAttribute, sort: Option<&KeyAttribute>| {
        shape.insert(format!("{owner} HASH {} {:?}", partition.name, partition.kind));
        if let Some(sort) = sort {
            shape.insert(format!("{owner} RANGE {} {:?}", sort.name, sort.kind));
        }
    };
    keys("table", &spec.partition_key, spec.sort_key.as_ref());
    for index in &spec.indexes {
        keys(&format!("index {}", index.name), &index.partition_key, index.sort_key.as_ref());
    }
    for index in &spec.indexes {
        shape.insert(format!("index {} {}", index.name, projection_line(&stored_projection(spec, index))));
    }
    shape
}

fn projection_line(projection: &Projection) -> String {
    match projection {
        Projection::All => "ALL".into(),
        Projection::KeysOnly => "KEYS_ONLY".into(),
        Projection::Include(names) => {
            let sorted: BTreeSet<&String> = names.iter().collect();
            format!("INCLUDE {}", sorted.into_iter().cloned().collect::<Vec<_>>().join(","))
        }
    }
}

fn shape_of_description(table: &TableDescription) -> Shape {
    let kind_of = |name: &str| {
        table
            .attribute_definitions()
            .iter()
            .find(|definition| definition.attribute_name() == name)
            .map(|definition| definition.attribute_type().as_str().to_owned())
            .unwrap_or_default()
    };
    let mut shape = Shape::new();
    let mut keys = |owner: &str, elements: &[KeySchemaElement]| {
        for element in elements {
            let name = element.attribute_name();
            shape.insert(format!("{owner} {} {name} {}", element.key_type().as_str(), kind_of(name)));
        }
    };
    keys("table", table.key_schema());
    for index in table.global_secondary_indexes() {
        keys(&format!("index {}", index.index_name().unwrap_or_default()), index.key_schema());
    }
    for index in table.global_secondary_indexes() {
        let projection = index.projection();
        let stored = match projection.and_then(|projection| projection.projection_type()) {
            Some(ProjectionType::Include) => Projection::Include(
                projection.map(|projection| projection.non_key_attributes().to_vec()).unwrap_or_default(),
            ),
            Some(ProjectionType::KeysOnly) => Projection::KeysOnly,
            _ => Projection::All,
        };
        shape.insert(format!(
            "index {} {}",
            index.index_name().unwrap_or_default(),
            projection_line(&stored)
        ));
    }
    shape
}
