//! The capacity meter on moto: requests through a metered client on a table
//! the store created (with its real indexes), each priced against figures
//! worked out from DynamoDB's rules. The pricing rules themselves are unit
//! tests in `tests/src/meter.rs`; this checks the wiring: that the meter sees
//! each request, reads the items around writes, learns the indexes from the
//! table description, and prices the answers.
//!
//! Stack only: the meter wraps the DynamoDB client and prices DynamoDB
//! requests; there is nothing of it on the embedded store.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use casebridge_tests::meter::{item_size, Item};
use casebridge_tests::*;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// An item of exactly `bytes`, padded in `doc`, with extra attributes.
fn sized(sk: &str, bytes: usize, extra: &[(&str, &str)]) -> Item {
    let mut item: Item = [("pk", "P#1"), ("sk", sk)]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), s(v)))
        .collect();
    let pad = bytes - item_size(&item) - "doc".len();
    item.insert("doc".into(), s(&"x".repeat(pad)));
    assert_eq!(item_size(&item), bytes);
    item
}

fn key(sk: &str) -> Item {
    [("pk".to_string(), s("P#1")), ("sk".to_string(), s(sk))].into_iter().collect()
}

/// What the meter counted since `before`.
fn since(meter: &Meter, before: &mut Usage) -> Usage {
    let now = meter.usage();
    let delta = Usage {
        transactions: now.transactions - before.transactions,
        cancelled: now.cancelled - before.cancelled,
        writes: now.writes - before.writes,
        items_written: now.items_written - before.items_written,
        index_writes: now.index_writes - before.index_writes,
        write_units: now.write_units - before.write_units,
        index_write_units: now.index_write_units - before.index_write_units,
        cancelled_write_units: now.cancelled_write_units - before.cancelled_write_units,
        reads: now.reads - before.reads,
        queries: now.queries - before.queries,
        read_units: now.read_units - before.read_units,
        unmetered: now.unmetered - before.unmetered,
    };
    *before = now;
    delta
}

#[tokio::test(flavor = "multi_thread")]
async fn meter_prices_requests_as_dynamodb_would() {
    let Some(stack) = stack().await else { return };
    let plain = stack.table().await;
    let (store, meter) = stack.metered(&plain);
    let (db, table) = (store.client().clone(), store.table().to_string());
    let mut seen = Usage::default();
    let due = [("due_pk", "DUE#Turn#0"), ("due_sk", "2026-11-24T09:00:00Z#CB-1#TURN#1")];

    // A 3,000-byte put in no index: 3 units (moto itself reports 1).
    db.put_item()
        .table_name(&table)
        .set_item(Some(sized("A", 3000, &[])))
        .send()
        .await
        .unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.writes, u.write_units, u.index_writes), (1, 3.0, 0), "{u:?}");

    // Replaced by a 200-byte item that enters the `due` index: the larger of
    // the two items (3 KB → 3) plus one keys-only index entry (1).
    db.put_item()
        .table_name(&table)
        .set_item(Some(sized("A", 200, &due)))
        .send()
        .await
        .unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.write_units, u.index_write_units, u.index_writes), (4.0, 1.0, 1), "{u:?}");

    // An update that moves it within the index: 1 for the item, a delete and a put in `due`.
    db.update_item()
        .table_name(&table)
        .set_key(Some(key("A")))
        .update_expression("SET due_sk = :later")
        .expression_attribute_values(":later", s("2026-11-24T10:00:00Z#CB-1#TURN#1"))
        .send()
        .await
        .unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.write_units, u.index_write_units, u.index_writes), (3.0, 2.0, 2), "{u:?}");

    // An update of an attribute the keys-only index does not project: the item alone.
    db.update_item()
        .table_name(&table)
        .set_key(Some(key("A")))
        .update_expression("SET note = :n")
        .expression_attribute_values(":n", s("seen"))
        .send()
        .await
        .unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.write_units, u.index_writes), (1.0, 0), "{u:?}");

    // A transaction: a new 1,500-byte item (2 KB → 2 × 2) and a condition
    // check on A (well under 1 KB → 2 × 1): 6 units (moto reports none).
    let put = |item: Item, condition: Option<&str>| {
        let put = Put::builder()
            .table_name(&table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    let check = TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(&table)
                .set_key(Some(key("A")))
                .condition_expression("attribute_exists(pk)")
                .build()
                .unwrap(),
        )
        .build();
    db.transact_write_items()
        .transact_items(put(sized("B", 1500, &[]), Some("attribute_not_exists(pk)")))
        .transact_items(check.clone())
        .send()
        .await
        .unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.transactions, u.items_written, u.write_units), (1, 2, 6.0), "{u:?}");

    // The same put again: its condition fails and the transaction is
    // cancelled. The prepare is charged, 1 per started KB: B (2) and A (1).
    let cancelled = db
        .transact_write_items()
        .transact_items(put(sized("B", 1500, &[]), Some("attribute_not_exists(pk)")))
        .transact_items(check)
        .send()
        .await;
    assert!(cancelled.is_err());
    let u = since(&meter, &mut seen);
    assert_eq!(
        (u.transactions, u.cancelled, u.write_units, u.index_writes),
        (1, 1, 3.0, 0),
        "{u:?}"
    );
    assert_eq!(u.cancelled_write_units, 3.0);

    // A standard put whose condition fails costs the stored item: B, 2 KB → 2.
    let failed = db
        .put_item()
        .table_name(&table)
        .set_item(Some(sized("B", 100, &[])))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(failed.is_err());
    let u = since(&meter, &mut seen);
    assert_eq!(u.write_units, 2.0, "{u:?}");

    // Reads: a missing item 1 (consistent) and 0.5 (eventual); B (1,500
    // bytes) 1; a 5,000-byte item 2 consistent, 1 eventual.
    for (sk, consistent, units) in [("none", true, 1.0), ("none", false, 0.5), ("B", true, 1.0)] {
        db.get_item()
            .table_name(&table)
            .set_key(Some(key(sk)))
            .consistent_read(consistent)
            .send()
            .await
            .unwrap();
        let u = since(&meter, &mut seen);
        assert_eq!((u.reads, u.read_units), (1, units), "GetItem {sk} consistent={consistent}: {u:?}");
    }
    db.put_item()
        .table_name(&table)
        .set_item(Some(sized("C", 5000, &[])))
        .send()
        .await
        .unwrap();
    since(&meter, &mut seen);
    for (consistent, units) in [(true, 2.0), (false, 1.0)] {
        db.get_item()
            .table_name(&table)
            .set_key(Some(key("C")))
            .consistent_read(consistent)
            .send()
            .await
            .unwrap();
        assert_eq!(since(&meter, &mut seen).read_units, units);
    }
    // Projecting one attribute changes nothing: the whole item is read.
    db.get_item()
        .table_name(&table)
        .set_key(Some(key("C")))
        .projection_expression("pk")
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(since(&meter, &mut seen).read_units, 2.0);

    // A Query page sums its items: A (about 260 bytes), B 1,500, C 5,000 →
    // under 8 KB → 2 units consistent.
    let a_size = item_size(
        &plain
            .client()
            .get_item()
            .table_name(&table)
            .set_key(Some(key("A")))
            .send()
            .await
            .unwrap()
            .item
            .unwrap(),
    );
    assert!(a_size + 1500 + 5000 <= 8192);
    let query = || {
        db.query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s("P#1"))
            .consistent_read(true)
    };
    let page = query().send().await.unwrap();
    assert_eq!(page.items().len(), 3);
    let u = since(&meter, &mut seen);
    assert_eq!((u.queries, u.read_units), (1, 2.0), "{u:?}");
    // With a filter that lets nothing through, the page still read all three.
    let page = query()
        .filter_expression("note = :nothing")
        .expression_attribute_values(":nothing", s("no such note"))
        .send()
        .await
        .unwrap();
    assert!(page.items().is_empty());
    assert_eq!(since(&meter, &mut seen).read_units, 2.0);
    // The `due` index, eventually consistent: A's entry alone → 0.5.
    db.query()
        .table_name(&table)
        .index_name("due")
        .key_condition_expression("due_pk = :pk")
        .expression_attribute_values(":pk", s("DUE#Turn#0"))
        .send()
        .await
        .unwrap();
    assert_eq!(since(&meter, &mut seen).read_units, 0.5);

    // Deleting A: its size (under 1 KB → 1) and its index entry (1).
    db.delete_item().table_name(&table).set_key(Some(key("A"))).send().await.unwrap();
    let u = since(&meter, &mut seen);
    assert_eq!((u.write_units, u.index_write_units), (2.0, 1.0), "{u:?}");

    assert_eq!(meter.usage().unmetered, 0);
}
