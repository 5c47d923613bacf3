//! Stack only: how the DynamoDB adapter lays out items, and that a table
//! written by the earlier layout still reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use casebridge::model::{Record, RecordKind, TimelineEvent};
use casebridge::store::{CaseWrite, Commit, RecordWrite, Store};
use casebridge_tests::*;

fn event(key: &str, at: chrono::DateTime<chrono::Utc>) -> Record {
    Record::Event(TimelineEvent {
        id: key.into(),
        at,
        kind: "note".into(),
        detail: key.into(),
    })
}

/// The lines of one commit share one item; a table holding one item per line
/// (as every table did before) reads the same, in key order, with no migration.
#[tokio::test(flavor = "multi_thread")]
async fn timeline_lines_are_packed_per_commit_and_old_single_items_still_read() {
    let Some(stack) = stack().await else { return };
    let store = stack.table().await;
    let case = casebridge::testing::sample_case(&casebridge::ids::CaseId::generate("CL"));
    let at = case.created_at;
    let mut commit = Commit::new(case.id.clone());
    commit.case = Some(CaseWrite::Create(case.clone()));
    for key in ["EVT#0000000001#000", "EVT#0000000001#001", "EVT#0000000001#002"] {
        commit.records.push(RecordWrite::Create(event(key, at)));
    }
    store.commit(commit).await.unwrap();

    // An old-layout line, written as the earlier adapter wrote it.
    let old = event("EVT#0000000000#000", at);
    let mut item = HashMap::new();
    item.insert("pk".to_string(), AttributeValue::S(casebridge::store::dynamo::case_pk(&case.id)));
    item.insert("sk".to_string(), AttributeValue::S("EVT#0000000000#000".into()));
    item.insert("record_type".to_string(), AttributeValue::S("Event".into()));
    item.insert("case_id".to_string(), AttributeValue::S(case.id.to_string()));
    item.insert("doc".to_string(), AttributeValue::S(serde_json::to_string(&old).unwrap()));
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let items = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :evt)")
        .expression_attribute_values(":pk", AttributeValue::S(casebridge::store::dynamo::case_pk(&case.id)))
        .expression_attribute_values(":evt", AttributeValue::S("EVT#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "three lines of one commit in one item, plus the old one");

    let keys: Vec<String> = store
        .list_records(&case.id, RecordKind::Event)
        .await
        .unwrap()
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "EVT#0000000000#000",
            "EVT#0000000001#000",
            "EVT#0000000001#001",
            "EVT#0000000001#002"
        ]
    );
    assert_eq!(
        store.get_record(&case.id, "EVT#0000000001#001").await.unwrap(),
        Some(event("EVT#0000000001#001", at))
    );
    assert_eq!(store.get_record(&case.id, "EVT#0000000000#000").await.unwrap(), Some(old));
    assert_eq!(store.get_record(&case.id, "EVT#0000000001#009").await.unwrap(), None);
}
