//! The SAM template against the code it deploys: every function of the registry with its
//! trigger and filter, every table with the keys and indexes its spec declares, and the
//! authenticated role with the own-folder policy the local IAM module enforces.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;
use stratus::apps::registry::{FUNCTIONS, Trigger};
use stratus::ports::table::TableSpec;
use stratus_aws::dynamodb::{Shape, shape_of_spec};

const TEMPLATE: &str = include_str!("../../../deploy/template.yaml");
const OWN_FOLDER: &str = include_str!("../../stratus/policies/own-folder.json");

fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE).expect("the template is YAML")
}

fn resources_of(template: &Value, kind: &str) -> Vec<(String, Value)> {
    let resources = template["Resources"].as_mapping().expect("resources");
    resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(name, resource)| (name.as_str().unwrap_or_default().to_owned(), resource.clone()))
        .collect()
}

/// A `!Sub "text"` (or plain string) as its text.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Tagged(tagged) => text(&tagged.value),
        other => panic!("not a string: {other:?}"),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn every_function_of_the_registry_is_deployed_with_its_trigger() {
    let template = template();
    let functions = resources_of(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), FUNCTIONS.len(), "one function resource per registry function");
    for function in FUNCTIONS {
        let (name, resource) = functions
            .iter()
            .find(|(_, resource)| resource["Properties"]["Handler"].as_str() == Some(function.name))
            .unwrap_or_else(|| panic!("no function with Handler {}", function.name));
        let events: Vec<&Value> =
            resource["Properties"]["Events"].as_mapping().expect("events").values().collect();
        match function.trigger {
            Trigger::Http => {
                assert!(!events.is_empty(), "{name}: no API event");
                assert!(events.iter().all(|event| event["Type"].as_str() == Some("Api")), "{name}");
            }
            Trigger::TableChanges { table, filter } => {
                let [event] = events.as_slice() else { panic!("{name}: one stream event") };
                let properties = &event["Properties"];
                assert_eq!(event["Type"].as_str(), Some("DynamoDB"), "{name}");
                let stream = format!("{:?}", properties["Stream"]);
                assert!(stream.contains(&format!("{}Table", capitalised(table))), "{name} reads {stream}");
                let pattern =
                    properties["FilterCriteria"]["Filters"][0]["Pattern"].as_str().expect("a pattern");
                assert_eq!(json(pattern), json(filter), "{name}: the filter is the registry's");
                assert_eq!(properties["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
                assert_eq!(properties["BisectBatchOnFunctionError"].as_bool(), Some(true), "{name}");
                for setting in ["BatchSize", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds"] {
                    assert!(properties[setting].as_u64().is_some(), "{name}: {setting}");
                }
                assert!(!properties["DestinationConfig"]["OnFailure"]["Destination"].is_null(), "{name}");
                // Stream consumers run in the home region only.
                assert_eq!(resource["Condition"].as_str(), Some("IsHome"), "{name}");
            }
            Trigger::ObjectCreated { bucket, prefix } => {
                let [event] = events.as_slice() else { panic!("{name}: one S3 event") };
                assert_eq!(event["Type"].as_str(), Some("S3"), "{name}");
                let bucket_ref = format!("{:?}", event["Properties"]["Bucket"]);
                assert!(
                    bucket_ref.contains(&format!("{}Bucket", capitalised(bucket))),
                    "{name}: {bucket_ref}"
                );
                let rule = &event["Properties"]["Filter"]["S3Key"]["Rules"][0];
                assert_eq!((rule["Name"].as_str(), rule["Value"].as_str()), (Some("prefix"), Some(prefix)));
            }
        }
    }
}

fn capitalised(name: &str) -> String {
    name.split('-').map(|part| part[..1].to_uppercase() + &part[1..]).collect()
}

/// A global table of the template, in the adapter's comparable lines.
fn shape_of_resource(table: &Value) -> Shape {
    let properties = &table["Properties"];
    let kind_of = |name: &str| {
        let definitions = properties["AttributeDefinitions"].as_sequence().expect("definitions");
        let definition = definitions.iter().find(|d| d["AttributeName"].as_str() == Some(name));
        definition.and_then(|d| d["AttributeType"].as_str()).unwrap_or_default().to_owned()
    };
    let keys = |owner: &str, schema: &Value| -> Vec<String> {
        let elements = schema.as_sequence().expect("key schema").iter();
        elements
            .map(|element| {
                let name = element["AttributeName"].as_str().expect("name");
                let kind = element["KeyType"].as_str().expect("key type");
                format!("{owner} {kind} {name} {}", kind_of(name))
            })
            .collect()
    };
    let mut shape: Shape = keys("table", &properties["KeySchema"]).into_iter().collect();
    for index in properties["GlobalSecondaryIndexes"].as_sequence().into_iter().flatten() {
        let name = index["IndexName"].as_str().expect("index name");
        shape.extend(keys(&format!("index {name}"), &index["KeySchema"]));
        let projection = &index["Projection"];
        let line = match projection["ProjectionType"].as_str() {
            Some("INCLUDE") => {
                let names: BTreeSet<&str> = projection["NonKeyAttributes"]
                    .as_sequence()
                    .expect("attributes")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                format!("INCLUDE {}", names.into_iter().collect::<Vec<_>>().join(","))
            }
            Some(other) => other.to_owned(),
            None => "ALL".to_owned(),
        };
        shape.insert(format!("index {name} {line}"));
    }
    shape
}

#[test]
fn every_table_has_the_keys_and_indexes_of_its_spec() {
    let template = template();
    let tables = resources_of(&template, "AWS::DynamoDB::GlobalTable");
    let specs: [TableSpec; 4] = [
        stratus::apps::blog::store::table_spec(),
        stratus::apps::media::photos::table_spec(),
        stratus::apps::todos::store::table_spec(),
        stratus::ports::mail::sent_log_spec(),
    ];
    assert_eq!(tables.len(), specs.len());
    for spec in specs {
        let name = format!("stratus-${{Stage}}-{}", spec.name);
        let (resource, table) = tables
            .iter()
            .find(|(_, table)| text(&table["Properties"]["TableName"]) == name)
            .unwrap_or_else(|| panic!("no table {name}"));
        assert_eq!(shape_of_resource(table), shape_of_spec(&spec), "{resource}");
        let view = table["Properties"]["StreamSpecification"]["StreamViewType"].as_str();
        assert_eq!(view, Some("NEW_AND_OLD_IMAGES"), "{resource}: the stream carries both images");
        let variable = format!("STRATUS_AWS_TABLE_{}", spec.name.to_ascii_uppercase().replace('-', "_"));
        let wired = &template["Globals"]["Function"]["Environment"]["Variables"][variable.as_str()];
        assert_eq!(text(wired), name, "{variable}");
    }
}

#[test]
fn the_authenticated_role_has_the_own_folder_policy_of_the_local_iam_module() {
    let template = template();
    let role = &template["Resources"]["AuthenticatedRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    // The template's document, with the bucket named as the local module names it and the
    // policy variables unescaped from !Sub.
    let rendered =
        serde_json::to_string(&serde_yaml_ng::from_value::<serde_json::Value>(untagged(role)).expect("json"))
            .expect("text")
            .replace("${UserFilesBucket}", "user-files")
            .replace("${!", "${");
    assert_eq!(json(&rendered), json(OWN_FOLDER));
}

/// `!Sub "…"` values as their strings.
fn untagged(value: &Value) -> Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        Value::Sequence(items) => Value::Sequence(items.iter().map(untagged).collect()),
        Value::Mapping(map) => Value::Mapping(map.iter().map(|(k, v)| (k.clone(), untagged(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn the_functions_environment_is_settings_stratus_accepts() {
    let template = template();
    let variables =
        template["Globals"]["Function"]["Environment"]["Variables"].as_mapping().expect("variables");
    // Each value as a deployed stack would give it (references resolved to plausible values).
    let env: std::collections::HashMap<String, String> = variables
        .keys()
        .map(|name| {
            let name = name.as_str().expect("a name").to_owned();
            let value = match name.as_str() {
                "STRATUS_MAIL__FROM" => "blog@example.com",
                "STRATUS_SERVER__PUBLIC_URL" => "https://blog.example.com",
                "STRATUS_STAGE" => "prod",
                _ => "value",
            };
            (name, value.to_owned())
        })
        .collect();
    let sdk =
        aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
    let settings = stratus_aws::objects::S3Settings::compatible("http://127.0.0.1:1", "us-east-1", "a", "b");
    let ports = stratus_aws::lambda::Ports::new(&sdk, &env, settings);
    assert!(ports.is_ok(), "{:?}", ports.err());
}
