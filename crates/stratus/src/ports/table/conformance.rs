//! The table conformance suite: the behaviour every [`Table`] adapter must show, written once
//! against the port. An adapter's tests instantiate it with
//! [`table_conformance_tests!`](crate::table_conformance_tests) and a [`TableFactory`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{
    AttributeValue, CancellationReason, Comparison, Condition, Cursor, IndexSpec, Item, KeyAttribute, Number,
    Query, SetValue, SortCondition, Table, TableError, TableSpec, TransactOp, UpdateAction, UpdateError,
};
use crate::item;

/// Opens a fresh, empty table for one test case.
#[async_trait]
pub trait TableFactory: Send + Sync {
    async fn open(&self, spec: TableSpec) -> Arc<dyn Table>;
}

/// Instantiates every conformance case as a `#[tokio::test]` in the calling module.
#[macro_export]
macro_rules! table_conformance_tests {
    ($factory:expr) => {
        $crate::table_conformance_tests!(@cases $factory;
            every_attribute_type_round_trips,
            get_of_a_missing_item_is_none,
            put_replaces_and_returns_the_old_item,
            failed_condition_writes_nothing,
            conditions_compare_values,
            update_applies_set_remove_add_delete,
            update_creates_a_missing_item,
            update_with_failed_condition_writes_nothing,
            update_of_a_key_attribute_is_refused,
            arithmetic_on_a_missing_attribute_is_refused,
            delete_returns_the_old_item_and_honours_its_condition,
            query_applies_sort_key_conditions,
            query_reads_backward_with_a_limit,
            query_paginates_over_many_pages,
            query_filter_applies_after_the_limit,
            number_sort_keys_order_numerically,
            index_follows_item_changes,
            index_query_paginates,
            projected_index_holds_only_its_attributes,
            transaction_applies_all_or_nothing,
            transaction_reports_each_failed_condition,
            transaction_refuses_duplicates_and_oversize,
            expired_items_are_not_returned,
            oversized_item_is_refused,
            invalid_keys_are_refused,
            empty_sets_are_refused,
            foreign_cursor_is_refused,
            numbers_are_exact,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let factory = $factory;
                $crate::ports::table::conformance::$case(&factory).await;
            }
        )*
    };
}

/// A table with a string partition key `pk`, a string sort key `sk`, an index `by_status`
/// (`status`, number `created`), an index `titles` (`owner`, number `created`) holding only
/// `title` beside the keys, and TTL attribute `expires`.
pub fn spec(name: &str) -> TableSpec {
    TableSpec::new(name, KeyAttribute::string("pk"))
        .sort_key(KeyAttribute::string("sk"))
        .index(
            IndexSpec::new("by_status", KeyAttribute::string("status"))
                .sort_key(KeyAttribute::number("created")),
        )
        .index(
            IndexSpec::new("titles", KeyAttribute::string("owner"))
                .sort_key(KeyAttribute::number("created"))
                .include(&["title"]),
        )
        .ttl_attribute("expires")
}

fn key(pk: &str, sk: &str) -> Item {
    item! { "pk" => pk, "sk" => sk }
}

fn entry(pk: &str, sk: &str) -> Item {
    item! { "pk" => pk, "sk" => sk, "body" => format!("{pk}/{sk}") }
}

fn n(text: &str) -> Number {
    Number::parse(text).expect("valid number")
}

async fn open(factory: &dyn TableFactory) -> Arc<dyn Table> {
    factory.open(spec("conformance")).await
}

async fn all_pages(table: &dyn Table, query: Query) -> Vec<Item> {
    let mut items = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = table.query(query.clone().start_after(cursor)).await.expect("query");
        items.extend(page.items);
        pages += 1;
        assert!(pages < 10_000, "pagination does not terminate");
        match page.next {
            Some(next) => cursor = Some(next),
            None => return items,
        }
    }
}

fn sort_keys(items: &[Item]) -> Vec<String> {
    items.iter().map(|item| item["sk"].as_s().expect("string sort key").to_owned()).collect()
}

pub async fn every_attribute_type_round_trips(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let mut item = key("types", "all");
    item.insert("s".into(), AttributeValue::S("text ✓".into()));
    item.insert("n".into(), AttributeValue::N(n("-12.5")));
    item.insert("b".into(), AttributeValue::B(vec![0, 1, 255]));
    item.insert("bool".into(), AttributeValue::Bool(false));
    item.insert("null".into(), AttributeValue::Null(true));
    item.insert("l".into(), AttributeValue::L(vec![AttributeValue::from("x"), AttributeValue::from(1)]));
    item.insert("m".into(), AttributeValue::M(item! { "inner" => "value" }));
    item.insert("ss".into(), AttributeValue::Ss(["a".to_owned(), "b".to_owned()].into()));
    item.insert("ns".into(), AttributeValue::Ns([n("1"), n("2.5")].into()));
    item.insert("bs".into(), AttributeValue::Bs([vec![1], vec![2, 3]].into()));
    item.insert("empty_string".into(), AttributeValue::S(String::new()));
    table.put(item.clone(), None).await.expect("put");
    assert_eq!(table.get(&key("types", "all")).await.expect("get"), Some(item));
}

pub async fn get_of_a_missing_item_is_none(factory: &dyn TableFactory) {
    let table = open(factory).await;
    assert_eq!(table.get(&key("nobody", "here")).await.expect("get"), None);
}

pub async fn put_replaces_and_returns_the_old_item(factory: &dyn TableFactory) {
    let table = open(factory).await;
    assert_eq!(table.put(entry("a", "1"), None).await.expect("first put"), None);
    let replacement = item! { "pk" => "a", "sk" => "1", "other" => true };
    let old = table.put(replacement.clone(), None).await.expect("second put");
    assert_eq!(old, Some(entry("a", "1")));
    assert_eq!(table.get(&key("a", "1")).await.expect("get"), Some(replacement));
}

pub async fn failed_condition_writes_nothing(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("a", "1"), Some(Condition::not_exists("pk"))).await.expect("create");
    let overwrite = item! { "pk" => "a", "sk" => "1", "body" => "overwritten" };
    let result = table.put(overwrite, Some(Condition::not_exists("pk"))).await;
    assert!(matches!(result, Err(TableError::ConditionFailed)), "got {result:?}");
    assert_eq!(table.get(&key("a", "1")).await.expect("get"), Some(entry("a", "1")));
    let missing = table.delete(&key("b", "1"), Some(Condition::exists("pk"))).await;
    assert!(matches!(missing, Err(TableError::ConditionFailed)), "got {missing:?}");
}

pub async fn conditions_compare_values(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let item = item! { "pk" => "c", "sk" => "1", "count" => 5, "name" => "stratus", "tags" => AttributeValue::Ss(["x".to_owned()].into()) };
    table.put(item.clone(), None).await.expect("put");
    let holds = [
        Condition::compare("count", Comparison::Gt, 4),
        Condition::compare("count", Comparison::Le, 5),
        Condition::compare("count", Comparison::Ne, 6),
        Condition::Between("count".into(), 1.into(), 5.into()),
        Condition::begins_with("name", "str"),
        Condition::Contains("tags".into(), "x".into()),
        Condition::eq("name", "stratus").and(Condition::exists("count")),
        Condition::Or(vec![Condition::eq("name", "other"), Condition::not_exists("missing")]),
        Condition::Not(Box::new(Condition::eq("count", "5"))),
        // A missing attribute equals nothing, so it is unequal to everything.
        Condition::compare("missing", Comparison::Ne, 1),
    ];
    for condition in holds {
        table
            .put(item.clone(), Some(condition.clone()))
            .await
            .unwrap_or_else(|e| panic!("{condition:?} should hold: {e}"));
    }
    let fails = [
        Condition::compare("count", Comparison::Lt, 5),
        Condition::compare("count", Comparison::Gt, "4"),
        Condition::begins_with("name", "cloud"),
        Condition::exists("missing"),
        Condition::compare("missing", Comparison::Gt, 1),
        Condition::eq("missing", 1),
    ];
    for condition in fails {
        let result = table.put(item! { "pk" => "c", "sk" => "1" }, Some(condition.clone())).await;
        assert!(matches!(result, Err(TableError::ConditionFailed)), "{condition:?} should fail: {result:?}");
    }
    assert_eq!(table.get(&key("c", "1")).await.expect("get"), Some(item));
}

pub async fn update_applies_set_remove_add_delete(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let start = item! {
        "pk" => "u", "sk" => "1", "views" => 10, "gone" => "soon",
        "tags" => AttributeValue::Ss(["a".to_owned(), "b".to_owned()].into()),
        "doc" => AttributeValue::M(item! { "title" => "old", "list" => AttributeValue::L(vec![1.into()]) }),
    };
    table.put(start, None).await.expect("put");
    let actions = [
        UpdateAction::set("title", "hello"),
        UpdateAction::Set("views".into(), SetValue::Increment(n("5"))),
        UpdateAction::Set("first_seen".into(), SetValue::IfNotExists(1.into())),
        UpdateAction::Set(crate::ports::table::Path::attr("doc").key("title"), SetValue::Value("new".into())),
        UpdateAction::Set(
            crate::ports::table::Path::attr("doc").key("list"),
            SetValue::ListAppend(vec![2.into()]),
        ),
        UpdateAction::remove("gone"),
        UpdateAction::add("counter", 3),
        UpdateAction::Add("labels".into(), AttributeValue::Ss(["x".to_owned()].into())),
        UpdateAction::Delete("tags".into(), AttributeValue::Ss(["a".to_owned(), "b".to_owned()].into())),
    ];
    let updated =
        table.update(&key("u", "1"), &actions, Some(Condition::exists("pk"))).await.expect("update");
    let expected = item! {
        "pk" => "u", "sk" => "1", "views" => 15, "title" => "hello", "first_seen" => 1, "counter" => 3,
        "labels" => AttributeValue::Ss(["x".to_owned()].into()),
        "doc" => AttributeValue::M(item! { "title" => "new", "list" => AttributeValue::L(vec![1.into(), 2.into()]) }),
    };
    assert_eq!(updated, expected);
    assert_eq!(table.get(&key("u", "1")).await.expect("get"), Some(expected));
    let again = table
        .update(
            &key("u", "1"),
            &[UpdateAction::Set("first_seen".into(), SetValue::IfNotExists(2.into()))],
            None,
        )
        .await
        .expect("if_not_exists");
    assert_eq!(again["first_seen"], AttributeValue::from(1));
}

pub async fn update_creates_a_missing_item(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let created =
        table.update(&key("new", "1"), &[UpdateAction::add("hits", 1)], None).await.expect("upsert");
    assert_eq!(created, item! { "pk" => "new", "sk" => "1", "hits" => 1 });
    assert_eq!(table.get(&key("new", "1")).await.expect("get"), Some(created));
}

pub async fn update_with_failed_condition_writes_nothing(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("v", "1"), None).await.expect("put");
    let result = table
        .update(&key("v", "1"), &[UpdateAction::set("body", "changed")], Some(Condition::eq("body", "other")))
        .await;
    assert!(matches!(result, Err(TableError::ConditionFailed)), "got {result:?}");
    assert_eq!(table.get(&key("v", "1")).await.expect("get"), Some(entry("v", "1")));
}

pub async fn update_of_a_key_attribute_is_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("k", "1"), None).await.expect("put");
    let result = table.update(&key("k", "1"), &[UpdateAction::set("sk", "2")], None).await;
    assert!(
        matches!(result, Err(TableError::KeyUpdate { ref attribute }) if attribute == "sk"),
        "got {result:?}"
    );
    let overlapping = [UpdateAction::set("a", 1), UpdateAction::remove("a")];
    let result = table.update(&key("k", "1"), &overlapping, None).await;
    assert!(matches!(result, Err(TableError::Update(UpdateError::OverlappingPaths(..)))), "got {result:?}");
    assert_eq!(table.get(&key("k", "1")).await.expect("get"), Some(entry("k", "1")));
}

pub async fn arithmetic_on_a_missing_attribute_is_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("m", "1"), None).await.expect("put");
    let result = table
        .update(&key("m", "1"), &[UpdateAction::Set("missing".into(), SetValue::Increment(n("1")))], None)
        .await;
    assert!(matches!(result, Err(TableError::Update(UpdateError::WrongOperand { .. }))), "got {result:?}");
    let result = table.update(&key("m", "1"), &[UpdateAction::add("body", 1)], None).await;
    assert!(matches!(result, Err(TableError::Update(UpdateError::WrongOperand { .. }))), "got {result:?}");
    assert_eq!(table.get(&key("m", "1")).await.expect("get"), Some(entry("m", "1")));
}

pub async fn delete_returns_the_old_item_and_honours_its_condition(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("d", "1"), None).await.expect("put");
    let refused = table.delete(&key("d", "1"), Some(Condition::eq("body", "nope"))).await;
    assert!(matches!(refused, Err(TableError::ConditionFailed)), "got {refused:?}");
    assert_eq!(table.delete(&key("d", "1"), None).await.expect("delete"), Some(entry("d", "1")));
    assert_eq!(table.get(&key("d", "1")).await.expect("get"), None);
    assert_eq!(table.delete(&key("d", "1"), None).await.expect("delete again"), None);
}

pub async fn query_applies_sort_key_conditions(factory: &dyn TableFactory) {
    let table = open(factory).await;
    for sk in ["a", "b", "ba", "bb", "c", "d"] {
        table.put(entry("q", sk), None).await.expect("put");
    }
    table.put(entry("other", "b"), None).await.expect("put");
    let cases = [
        (None, vec!["a", "b", "ba", "bb", "c", "d"]),
        (Some(SortCondition::Eq("b".into())), vec!["b"]),
        (Some(SortCondition::Lt("b".into())), vec!["a"]),
        (Some(SortCondition::Le("b".into())), vec!["a", "b"]),
        (Some(SortCondition::Gt("c".into())), vec!["d"]),
        (Some(SortCondition::Ge("c".into())), vec!["c", "d"]),
        (Some(SortCondition::Between("b".into(), "bb".into())), vec!["b", "ba", "bb"]),
        (Some(SortCondition::BeginsWith("b".into())), vec!["b", "ba", "bb"]),
    ];
    for (condition, expected) in cases {
        let mut query = Query::partition("q");
        query.sort = condition.clone();
        let items = table.query(query).await.expect("query").items;
        assert_eq!(sort_keys(&items), expected, "condition {condition:?}");
    }
}

pub async fn query_reads_backward_with_a_limit(factory: &dyn TableFactory) {
    let table = open(factory).await;
    for sk in ["1", "2", "3", "4"] {
        table.put(entry("r", sk), None).await.expect("put");
    }
    let page = table.query(Query::partition("r").backward().limit(3)).await.expect("query");
    assert_eq!(sort_keys(&page.items), ["4", "3", "2"]);
    let rest =
        table.query(Query::partition("r").backward().limit(3).start_after(page.next)).await.expect("query");
    assert_eq!(sort_keys(&rest.items), ["1"]);
    assert_eq!(rest.next, None);
}

pub async fn query_paginates_over_many_pages(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let expected: Vec<String> = (0..250).map(|i| format!("item#{i:04}")).collect();
    for sk in &expected {
        table.put(entry("p", sk), None).await.expect("put");
    }
    let forward = all_pages(table.as_ref(), Query::partition("p").limit(7)).await;
    assert_eq!(sort_keys(&forward), expected);
    let backward = all_pages(table.as_ref(), Query::partition("p").limit(13).backward()).await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(sort_keys(&backward), reversed);
    let ranged = all_pages(
        table.as_ref(),
        Query::partition("p").sort(SortCondition::Between("item#0100".into(), "item#0199".into())).limit(9),
    )
    .await;
    assert_eq!(sort_keys(&ranged), expected[100..200].to_vec());
    let token = table
        .query(Query::partition("p").limit(5))
        .await
        .expect("query")
        .next
        .expect("more pages")
        .to_token();
    let resumed = table
        .query(Query::partition("p").limit(5).start_after(Some(Cursor::from_token(&token).expect("token"))))
        .await
        .expect("resume from token");
    assert_eq!(sort_keys(&resumed.items), expected[5..10].to_vec());
}

pub async fn query_filter_applies_after_the_limit(factory: &dyn TableFactory) {
    let table = open(factory).await;
    for (sk, keep) in [("1", true), ("2", false), ("3", true), ("4", true)] {
        table.put(item! { "pk" => "f", "sk" => sk, "keep" => keep }, None).await.expect("put");
    }
    let filter = Condition::eq("keep", true);
    let page = table.query(Query::partition("f").limit(2).filter(filter.clone())).await.expect("query");
    assert_eq!(sort_keys(&page.items), ["1"]);
    assert!(page.next.is_some());
    let all = all_pages(table.as_ref(), Query::partition("f").limit(2).filter(filter)).await;
    assert_eq!(sort_keys(&all), ["1", "3", "4"]);
}

pub async fn number_sort_keys_order_numerically(factory: &dyn TableFactory) {
    let spec = TableSpec::new("numbers", KeyAttribute::string("pk")).sort_key(KeyAttribute::number("n"));
    let table = factory.open(spec).await;
    let values = ["-100", "-2.5", "-1", "0", "0.5", "1", "2", "10", "100", "1e20"];
    for value in values.iter().rev() {
        table.put(item! { "pk" => "n", "n" => n(value) }, None).await.expect("put");
    }
    let items = table.query(Query::partition("n")).await.expect("query").items;
    let got: Vec<Number> = items.iter().map(|item| item["n"].as_n().expect("number").clone()).collect();
    let expected: Vec<Number> = values.iter().map(|value| n(value)).collect();
    assert_eq!(got, expected);
    let between = table
        .query(Query::partition("n").sort(SortCondition::Between(n("-1").into(), n("2").into())))
        .await
        .expect("query")
        .items;
    assert_eq!(between.len(), 5);
}

pub async fn index_follows_item_changes(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let todo = |sk: &str, status: &str, created: i64| {
        item! { "pk" => "user#1", "sk" => sk, "status" => status, "created" => created }
    };
    table.put(todo("t1", "open", 3), None).await.expect("put");
    table.put(todo("t2", "open", 1), None).await.expect("put");
    table.put(todo("t3", "done", 2), None).await.expect("put");
    // No `status`: not in the index.
    table.put(entry("user#1", "t4"), None).await.expect("put");
    let open_items = |table: Arc<dyn Table>| async move {
        sort_keys(&table.query(Query::partition("open").index("by_status")).await.expect("index query").items)
    };
    assert_eq!(open_items(Arc::clone(&table)).await, ["t2", "t1"]);
    table.update(&key("user#1", "t2"), &[UpdateAction::set("status", "done")], None).await.expect("update");
    assert_eq!(open_items(Arc::clone(&table)).await, ["t1"]);
    table.delete(&key("user#1", "t1"), None).await.expect("delete");
    assert!(open_items(Arc::clone(&table)).await.is_empty());
    let done = table
        .query(Query::partition("done").index("by_status").sort(SortCondition::Ge(2.into())))
        .await
        .expect("query")
        .items;
    assert_eq!(sort_keys(&done), ["t3"]);
    let wrong_type = table.put(item! { "pk" => "x", "sk" => "1", "status" => 5 }, None).await;
    assert!(matches!(wrong_type, Err(TableError::KeyType { .. })), "got {wrong_type:?}");
    let unknown = table.query(Query::partition("open").index("nope")).await;
    assert!(matches!(unknown, Err(TableError::UnknownIndex { .. })), "got {unknown:?}");
}

pub async fn index_query_paginates(factory: &dyn TableFactory) {
    let table = open(factory).await;
    // Equal index sort keys across partitions: the table key breaks the tie.
    for i in 0..60 {
        let item = item! { "pk" => format!("user#{}", i % 7), "sk" => format!("t{i:03}"), "status" => "open", "created" => i / 3 };
        table.put(item, None).await.expect("put");
    }
    let forward = all_pages(table.as_ref(), Query::partition("open").index("by_status").limit(8)).await;
    assert_eq!(forward.len(), 60);
    let created: Vec<i64> = forward
        .iter()
        .map(|item| item["created"].as_n().expect("n").as_str().parse().expect("int"))
        .collect();
    assert!(created.windows(2).all(|pair| pair[0] <= pair[1]), "index order: {created:?}");
    let mut distinct = sort_keys(&forward);
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 60, "every item exactly once");
    let backward =
        all_pages(table.as_ref(), Query::partition("open").index("by_status").limit(11).backward()).await;
    let mut reversed = forward.clone();
    reversed.reverse();
    assert_eq!(backward, reversed);
}

pub async fn projected_index_holds_only_its_attributes(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let note = |sk: &str, created: i64, title: &str| {
        item! { "pk" => "user#1", "sk" => sk, "owner" => "ada", "created" => created, "title" => title, "body" => "long text" }
    };
    table.put(note("n1", 1, "first"), None).await.expect("put");
    table.put(note("n2", 2, "second"), None).await.expect("put");
    let titles = |table: Arc<dyn Table>| async move {
        table.query(Query::partition("ada").index("titles")).await.expect("index query").items
    };
    let projected = |sk: &str, created: i64, title: &str| {
        item! { "pk" => "user#1", "sk" => sk, "owner" => "ada", "created" => created, "title" => title }
    };
    assert_eq!(titles(Arc::clone(&table)).await, [projected("n1", 1, "first"), projected("n2", 2, "second")]);
    // A projected attribute's change shows; another's leaves the entry as it was.
    table.update(&key("user#1", "n1"), &[UpdateAction::set("title", "renamed")], None).await.expect("update");
    table.update(&key("user#1", "n2"), &[UpdateAction::set("body", "edited")], None).await.expect("update");
    assert_eq!(
        titles(Arc::clone(&table)).await,
        [projected("n1", 1, "renamed"), projected("n2", 2, "second")]
    );
    // A filter sees what the index holds.
    let filtered = table
        .query(Query::partition("ada").index("titles").filter(Condition::eq("title", "second")))
        .await
        .expect("query")
        .items;
    assert_eq!(filtered, [projected("n2", 2, "second")]);
    // An item that expires, or leaves the index, is no longer in it.
    table
        .update(&key("user#1", "n1"), &[UpdateAction::set("expires", now - 60)], None)
        .await
        .expect("update");
    table.update(&key("user#1", "n2"), &[UpdateAction::remove("owner")], None).await.expect("update");
    assert!(titles(Arc::clone(&table)).await.is_empty());
    // The table still holds the whole item.
    let stored = table.get(&key("user#1", "n2")).await.expect("get").expect("item");
    assert_eq!(stored.get("body"), Some(&"edited".into()));
}

pub async fn transaction_applies_all_or_nothing(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("t", "existing"), None).await.expect("put");
    table.put(item! { "pk" => "t", "sk" => "counter", "n" => 1 }, None).await.expect("put");
    let failing = vec![
        TransactOp::Put { item: entry("t", "new"), condition: None },
        TransactOp::Update {
            key: key("t", "counter"),
            actions: vec![UpdateAction::add("n", 1)],
            condition: None,
        },
        TransactOp::Delete { key: key("t", "existing"), condition: Some(Condition::eq("body", "wrong")) },
    ];
    let result = table.transact_write(failing).await;
    assert!(matches!(result, Err(TableError::TransactionCanceled { .. })), "got {result:?}");
    assert_eq!(table.get(&key("t", "new")).await.expect("get"), None);
    assert_eq!(table.get(&key("t", "counter")).await.expect("get").expect("counter")["n"], 1.into());
    assert!(table.get(&key("t", "existing")).await.expect("get").is_some());

    let succeeding = vec![
        TransactOp::Put { item: entry("t", "new"), condition: Some(Condition::not_exists("pk")) },
        TransactOp::Update {
            key: key("t", "counter"),
            actions: vec![UpdateAction::add("n", 1)],
            condition: None,
        },
        TransactOp::Delete { key: key("t", "existing"), condition: Some(Condition::exists("pk")) },
        TransactOp::ConditionCheck { key: key("t", "absent"), condition: Condition::not_exists("pk") },
    ];
    table.transact_write(succeeding).await.expect("transaction");
    assert!(table.get(&key("t", "new")).await.expect("get").is_some());
    assert_eq!(table.get(&key("t", "counter")).await.expect("get").expect("counter")["n"], 2.into());
    assert_eq!(table.get(&key("t", "existing")).await.expect("get"), None);
}

pub async fn transaction_reports_each_failed_condition(factory: &dyn TableFactory) {
    let table = open(factory).await;
    table.put(entry("r", "1"), None).await.expect("put");
    let operations = vec![
        TransactOp::Put { item: entry("r", "1"), condition: Some(Condition::not_exists("pk")) },
        TransactOp::Put { item: entry("r", "2"), condition: None },
        TransactOp::ConditionCheck { key: key("r", "3"), condition: Condition::exists("pk") },
    ];
    match table.transact_write(operations).await {
        Err(TableError::TransactionCanceled { reasons }) => assert_eq!(
            reasons,
            [
                CancellationReason::ConditionalCheckFailed,
                CancellationReason::None,
                CancellationReason::ConditionalCheckFailed
            ]
        ),
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    assert_eq!(table.get(&key("r", "2")).await.expect("get"), None);
}

pub async fn transaction_refuses_duplicates_and_oversize(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let duplicate = vec![
        TransactOp::Put { item: entry("x", "1"), condition: None },
        TransactOp::Delete { key: key("x", "1"), condition: None },
    ];
    let result = table.transact_write(duplicate).await;
    assert!(matches!(result, Err(TableError::DuplicateTransactionItem)), "got {result:?}");
    let too_many: Vec<TransactOp> =
        (0..101).map(|i| TransactOp::Put { item: entry("x", &i.to_string()), condition: None }).collect();
    let result = table.transact_write(too_many).await;
    assert!(matches!(result, Err(TableError::TransactionSize { count: 101 })), "got {result:?}");
    let hundred: Vec<TransactOp> =
        (0..100).map(|i| TransactOp::Put { item: entry("x", &i.to_string()), condition: None }).collect();
    table.transact_write(hundred).await.expect("100 operations");
    assert_eq!(table.query(Query::partition("x")).await.expect("query").items.len(), 100);
    let empty = table.transact_write(Vec::new()).await;
    assert!(matches!(empty, Err(TableError::TransactionSize { count: 0 })), "got {empty:?}");
    // Eleven items of 390 KB are over the 4 MB a transaction may carry; ten are not.
    let large = |i: usize| {
        let mut item = entry("large", &i.to_string());
        item.insert("blob".into(), AttributeValue::B(vec![1; 390 * 1024]));
        TransactOp::Put { item, condition: None }
    };
    let result = table.transact_write((0..11).map(large).collect()).await;
    assert!(matches!(result, Err(TableError::TransactionTooLarge { .. })), "got {result:?}");
    assert!(table.query(Query::partition("large")).await.expect("query").items.is_empty());
    table.transact_write((0..10).map(large).collect()).await.expect("3.9 MB");
}

pub async fn expired_items_are_not_returned(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    table.put(item! { "pk" => "ttl", "sk" => "past", "expires" => now - 60 }, None).await.expect("put");
    table.put(item! { "pk" => "ttl", "sk" => "future", "expires" => now + 3600 }, None).await.expect("put");
    table.put(item! { "pk" => "ttl", "sk" => "text", "expires" => "not a number" }, None).await.expect("put");
    assert_eq!(table.get(&key("ttl", "past")).await.expect("get"), None);
    assert!(table.get(&key("ttl", "future")).await.expect("get").is_some());
    let items = table.query(Query::partition("ttl")).await.expect("query").items;
    assert_eq!(sort_keys(&items), ["future", "text"]);
    // An expired item counts as absent for conditions.
    table
        .put(item! { "pk" => "ttl", "sk" => "past" }, Some(Condition::not_exists("pk")))
        .await
        .expect("expired item does not block a conditional create");
}

pub async fn oversized_item_is_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let mut big = key("big", "1");
    big.insert("blob".into(), AttributeValue::B(vec![7; 400 * 1024]));
    let result = table.put(big, None).await;
    assert!(matches!(result, Err(TableError::ItemTooLarge { .. })), "got {result:?}");
    assert_eq!(table.get(&key("big", "1")).await.expect("get"), None);
    let mut fits = key("big", "2");
    fits.insert("blob".into(), AttributeValue::B(vec![7; 390 * 1024]));
    table.put(fits, None).await.expect("an item under 400 KB");
    let grow = table
        .update(&key("big", "2"), &[UpdateAction::set("more", AttributeValue::B(vec![1; 20 * 1024]))], None)
        .await;
    assert!(matches!(grow, Err(TableError::ItemTooLarge { .. })), "got {grow:?}");
}

pub async fn invalid_keys_are_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    type IsExpected = fn(&TableError) -> bool;
    let cases: Vec<(Item, IsExpected)> = vec![
        (item! { "pk" => "a" }, |e| matches!(e, TableError::MissingKey { .. })),
        (item! { "pk" => 1, "sk" => "a" }, |e| matches!(e, TableError::KeyType { .. })),
        (item! { "pk" => "", "sk" => "a" }, |e| matches!(e, TableError::EmptyKey { .. })),
        (item! { "pk" => "a".repeat(2049), "sk" => "a" }, |e| matches!(e, TableError::KeyTooLarge { .. })),
        (item! { "pk" => "a", "sk" => "a".repeat(1025) }, |e| matches!(e, TableError::KeyTooLarge { .. })),
    ];
    for (item, expected) in cases {
        let error = table.put(item.clone(), None).await.expect_err("invalid key must be refused");
        assert!(expected(&error), "{item:?}: {error:?}");
        assert!(error.is_client_error());
    }
    let extra = table.get(&item! { "pk" => "a", "sk" => "b", "body" => "x" }).await;
    assert!(matches!(extra, Err(TableError::NotAKeyAttribute { .. })), "got {extra:?}");
    let wrong_query = table.query(Query::partition(5)).await;
    assert!(matches!(wrong_query, Err(TableError::KeyType { .. })), "got {wrong_query:?}");
}

pub async fn empty_sets_are_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let mut item = key("sets", "1");
    item.insert("tags".into(), AttributeValue::Ss(Default::default()));
    let result = table.put(item, None).await;
    assert!(matches!(result, Err(TableError::EmptySet { .. })), "got {result:?}");
    assert_eq!(table.get(&key("sets", "1")).await.expect("get"), None);
}

pub async fn foreign_cursor_is_refused(factory: &dyn TableFactory) {
    let table = open(factory).await;
    for sk in ["1", "2", "3"] {
        table.put(entry("a", sk), None).await.expect("put");
    }
    let other_partition = Cursor(key("b", "1"));
    let result = table.query(Query::partition("a").start_after(Some(other_partition))).await;
    assert!(matches!(result, Err(TableError::InvalidCursor { .. })), "got {result:?}");
    let malformed = Cursor(item! { "pk" => "a" });
    let result = table.query(Query::partition("a").start_after(Some(malformed))).await;
    assert!(matches!(result, Err(TableError::InvalidCursor { .. })), "got {result:?}");
    assert!(matches!(Cursor::from_token("%%%"), Err(TableError::InvalidCursor { .. })));
}

pub async fn numbers_are_exact(factory: &dyn TableFactory) {
    let table = open(factory).await;
    let precise = n("1234567890.1234567890123456789012345678");
    table
        .put(item! { "pk" => "num", "sk" => "1", "x" => precise.clone(), "sum" => n("0.1") }, None)
        .await
        .expect("put");
    let updated =
        table.update(&key("num", "1"), &[UpdateAction::add("sum", n("0.2"))], None).await.expect("add");
    assert_eq!(updated["sum"], AttributeValue::N(n("0.3")));
    assert_eq!(updated["x"], AttributeValue::N(precise));
}
