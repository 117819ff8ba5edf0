//! The table conformance suite, on DynamoDB (moto's server), and what the adapter adds.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use stratus::ports::table::conformance::TableFactory;
use stratus::ports::table::{Table, TableSpec};
use stratus_aws::dynamodb::{DynamoTable, WhenMissing};

struct Emulated;

#[async_trait]
impl TableFactory for Emulated {
    async fn open(&self, spec: TableSpec) -> Arc<dyn Table> {
        let client = aws_sdk_dynamodb::Client::new(&support::emulator().await);
        let name = support::unique_name(&spec.name);
        Arc::new(DynamoTable::open(client, spec, name, WhenMissing::Create).await.expect("open the table"))
    }
}

stratus::table_conformance_tests!(Emulated);

/// moto, like DynamoDB, keeps expired items until a sweep it never runs: what the adapter
/// must hide is really there.
mod expired_but_not_yet_deleted {
    use std::time::{SystemTime, UNIX_EPOCH};

    use stratus::item;
    use stratus::ports::table::conformance::spec;
    use stratus::ports::table::{Condition, TableError, TransactOp, UpdateAction};

    use super::*;

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
    }

    async fn table_with_an_expired_item() -> (DynamoTable, aws_sdk_dynamodb::Client, String) {
        let client = aws_sdk_dynamodb::Client::new(&support::emulator().await);
        let name = support::unique_name("expiry");
        let table = DynamoTable::open(client.clone(), spec("expiry"), name.clone(), WhenMissing::Create)
            .await
            .expect("open");
        let expired =
            item! { "pk" => "u", "sk" => "1", "expires" => now() - 60, "stale" => "left over", "hits" => 41 };
        table.put(expired, None).await.expect("put");
        (table, client, name)
    }

    async fn stored(client: &aws_sdk_dynamodb::Client, name: &str) -> Option<usize> {
        let output = client
            .get_item()
            .table_name(name)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("u".into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("1".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get");
        output.item.map(|item| item.len())
    }

    #[tokio::test]
    async fn an_update_starts_from_nothing_instead_of_the_expired_attributes() {
        let (table, client, name) = table_with_an_expired_item().await;
        assert_eq!(stored(&client, &name).await, Some(5), "the emulator keeps the expired item");
        let key = item! { "pk" => "u", "sk" => "1" };
        let updated = table.update(&key, &[UpdateAction::add("hits", 1)], None).await.expect("update");
        assert_eq!(updated, item! { "pk" => "u", "sk" => "1", "hits" => 1 });
        assert_eq!(stored(&client, &name).await, Some(3));
    }

    #[tokio::test]
    async fn a_transaction_update_starts_from_nothing_and_conditions_see_no_item() {
        let (table, _client, _name) = table_with_an_expired_item().await;
        let key = item! { "pk" => "u", "sk" => "1" };
        let refused = table
            .transact_write(vec![TransactOp::ConditionCheck {
                key: key.clone(),
                condition: Condition::exists("pk"),
            }])
            .await;
        assert!(matches!(refused, Err(TableError::TransactionCanceled { .. })), "got {refused:?}");
        let operations = vec![
            TransactOp::Update {
                key: key.clone(),
                actions: vec![UpdateAction::add("hits", 1)],
                condition: None,
            },
            TransactOp::ConditionCheck {
                key: item! { "pk" => "u", "sk" => "2" },
                condition: Condition::not_exists("pk"),
            },
        ];
        table.transact_write(operations).await.expect("the transaction");
        assert_eq!(
            table.get(&key).await.expect("get"),
            Some(item! { "pk" => "u", "sk" => "1", "hits" => 1 })
        );
    }

    #[tokio::test]
    async fn writes_over_it_return_no_old_item() {
        let (table, _client, _name) = table_with_an_expired_item().await;
        let replaced = table.put(item! { "pk" => "u", "sk" => "1" }, Some(Condition::not_exists("pk"))).await;
        assert_eq!(replaced.expect("an expired item does not block a create"), None);
        let (table, _client, _name) = table_with_an_expired_item().await;
        let deleted = table.delete(&item! { "pk" => "u", "sk" => "1" }, None).await.expect("delete");
        assert_eq!(deleted, None);
    }
}

mod schema {
    use stratus::ports::table::conformance::spec;
    use stratus::ports::table::{KeyAttribute, TableError};

    use super::*;

    #[tokio::test]
    async fn an_existing_table_must_have_the_declared_keys_and_indexes() {
        let client = aws_sdk_dynamodb::Client::new(&support::emulator().await);
        let name = support::unique_name("schema");
        DynamoTable::open(client.clone(), spec("schema"), name.clone(), WhenMissing::Create)
            .await
            .expect("create");
        DynamoTable::open(client.clone(), spec("schema"), name.clone(), WhenMissing::Fail)
            .await
            .expect("the same spec opens the existing table");
        let other_keys =
            TableSpec::new("schema", KeyAttribute::string("pk")).sort_key(KeyAttribute::number("sk"));
        let mismatch = DynamoTable::open(client.clone(), other_keys, name.clone(), WhenMissing::Fail).await;
        assert!(matches!(mismatch, Err(TableError::SchemaMismatch { .. })), "got {mismatch:?}");
        let mut fewer_indexes = spec("schema");
        fewer_indexes.indexes.pop();
        let mismatch = DynamoTable::open(client.clone(), fewer_indexes, name, WhenMissing::Fail).await;
        assert!(matches!(mismatch, Err(TableError::SchemaMismatch { .. })), "got {mismatch:?}");
        let missing =
            DynamoTable::open(client, spec("schema"), support::unique_name("absent"), WhenMissing::Fail)
                .await;
        assert!(matches!(missing, Err(TableError::Storage(_))), "got {missing:?}");
    }
}
