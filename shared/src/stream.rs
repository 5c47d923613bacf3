//! DynamoDB stream records → the casebridge record they announce, and a batch
//! loop that reports partial failures the way Lambda expects.
//!
//! Ordering: records of one case live in one partition, hence one shard. On
//! the first retryable failure the loop stops and reports that record, so
//! Lambda retries from there and later records of the case never overtake it.
//! Records that can never succeed (unknown case) are logged and skipped so
//! they do not block the shard.

use std::future::Future;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;

use crate::ids::CaseId;
use crate::pipeline::PipelineError;
use crate::triggers::{on_change, Change, ChangeKind, Function, Step};

/// The casebridge record a stream record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub case_id: CaseId,
    /// Sort key of the record (e.g. `WORK#0000000002`).
    pub key: String,
    pub record_type: String,
    pub status: Option<String>,
    /// What caused the record (outbound mail only).
    pub origin: Option<String>,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: String,
}

impl RecordRef {
    /// The change, as the trigger table reads it.
    pub fn change(&self) -> Option<Change<'_>> {
        Some(Change {
            kind: ChangeKind::parse(&self.event_name)?,
            record_type: &self.record_type,
            status: self.status.as_deref(),
            origin: self.origin.as_deref(),
        })
    }

    /// The step this record runs (`crate::triggers`), if any.
    pub fn step(&self) -> Option<Step> {
        self.change().as_ref().and_then(on_change).map(|t| t.step)
    }

    /// Whether `function` runs this record's step.
    pub fn is_for(&self, function: Function) -> bool {
        self.change().as_ref().and_then(on_change).is_some_and(|t| t.function == function)
    }
}

fn string(item: &serde_dynamo::Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Reads the record reference from the new image; None for items that are not case records.
pub fn record_ref(record: &EventRecord) -> Option<RecordRef> {
    let image = &record.change.new_image;
    let key = string(image, "sk").or_else(|| string(&record.change.keys, "sk"))?;
    let case_id = CaseId::parse(&string(image, "case_id")?)?;
    Some(RecordRef {
        case_id,
        key,
        record_type: string(image, "record_type")?,
        status: string(image, "status"),
        origin: string(image, "origin"),
        event_name: record.event_name.clone(),
    })
}

fn item_identifier(record: &EventRecord) -> Option<String> {
    record.change.sequence_number.clone()
}

/// Runs `work` on every record the trigger table gives `function`, with its
/// step, in order, and returns the batch item failures for Lambda.
pub async fn process_batch<F, Fut>(event: Event, function: Function, work: F) -> DynamoDbEventResponse
where
    F: Fn(RecordRef, Step) -> Fut,
    Fut: Future<Output = Result<(), PipelineError>>,
{
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some((target, step)) = record_ref(record)
            .filter(|r| r.is_for(function))
            .and_then(|r| r.step().map(|step| (r, step)))
        else {
            continue;
        };
        let label = format!("{}/{}", target.case_id, target.key);
        match work(target, step).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                tracing::error!(record = %label, error = %e, "stream record failed; reporting it for retry");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = item_identifier(record);
                response.batch_item_failures.push(failure);
                break;
            }
            Err(e) => {
                tracing::error!(record = %label, error = %e, "stream record cannot be processed; skipped")
            }
        }
    }
    response
}
