//! Inbound email function: an SES receipt event (the rule's S3 action stored
//! the raw MIME first) → each mail fetched from S3 and ingested.
//!
//! One bad record never loses the others: each record is handled on its own,
//! permanent faults (missing object, oversized or unparseable mail) are
//! recorded with the reason, and only transient faults fail the invocation so
//! Lambda retries it — ingest is idempotent per SES message id and Message-ID.

use aws_lambda_events::event::ses::{SimpleEmailEvent, SimpleEmailRecord};
use casebridge::config::Config;
use casebridge::inbound::Verdicts;
use casebridge::intent::IntentClassifier;
use casebridge::model::RejectedMail;
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::{Clock, StepEnv};
use casebridge::raw_mail::{RawMailError, RawMailSource};
use casebridge::store::Store;
use serde::Serialize;
use thiserror::Error;

pub struct InboundFunction<S, R> {
    pub store: S,
    pub raw_mail: R,
    pub config: Config,
    pub classifier: Box<dyn IntentClassifier>,
    pub clock: Box<dyn Clock>,
    /// Key prefix the SES S3 action writes under (key = prefix + SES message id).
    pub key_prefix: String,
}

#[derive(Debug, Error)]
pub enum InboundFunctionError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{failed} of {total} mails hit a transient fault and will be retried: {first}")]
    Transient { failed: usize, total: usize, first: String },
    /// Building the clients on the first event failed (e.g. a secret could not be read).
    #[error("setup failed: {0}")]
    Setup(String),
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordReport {
    pub ses_message_id: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InboundReport {
    pub records: Vec<RecordReport>,
}

fn verdicts(record: &SimpleEmailRecord) -> Verdicts {
    let receipt = &record.ses.receipt;
    Verdicts {
        spam: receipt.spam_verdict.status.clone(),
        virus: receipt.virus_verdict.status.clone(),
        spf: receipt.spf_verdict.status.clone(),
        dkim: receipt.dkim_verdict.status.clone(),
        dmarc: receipt.dmarc_verdict.status.clone(),
        dmarc_policy: receipt.dmarc_policy.clone(),
    }
}

impl<S: Store, R: RawMailSource> InboundFunction<S, R> {
    /// Entry point for whatever Lambda delivers: an SES receipt event, or
    /// `{"action": "reprocess", "caseId": "…"}` to route the case again with
    /// the current configuration and open a turn for its latest mail.
    pub async fn handle_any(&self, event: serde_json::Value) -> Result<serde_json::Value, InboundFunctionError> {
        if let Some(request) = casebridge::direct::ReprocessRequest::from_event(&event) {
            let case = casebridge::ids::CaseId::parse(&request.case_id).ok_or(InboundFunctionError::BadRequest("not a case id".into()))?;
            let env = StepEnv::new(&self.config, self.clock.as_ref());
            let outcome = casebridge::pipeline::representative::reopen_turn(env, &self.store, Some(self.classifier.as_ref()), &case)
                .await
                .map_err(|e| match e {
                    casebridge::pipeline::PipelineError::CaseNotFound(_) => InboundFunctionError::BadRequest(e.to_string()),
                    other => InboundFunctionError::Transient {
                        failed: 1,
                        total: 1,
                        first: other.to_string(),
                    },
                })?;
            return Ok(casebridge::direct::outcome_json(&outcome));
        }
        let ses: SimpleEmailEvent =
            serde_json::from_value(event).map_err(|e| InboundFunctionError::BadRequest(format!("not an SES receipt event: {e}")))?;
        let report = self.handle(ses).await?;
        serde_json::to_value(report).map_err(|e| InboundFunctionError::BadRequest(e.to_string()))
    }

    pub async fn handle(&self, event: SimpleEmailEvent) -> Result<InboundReport, InboundFunctionError> {
        let total = event.records.len();
        let mut reports = Vec::with_capacity(total);
        let mut transient = Vec::new();
        for record in &event.records {
            match self.handle_record(record).await {
                Ok(report) => reports.push(report),
                Err(reason) => {
                    tracing::error!(ses_message_id = ?record.ses.mail.message_id, error = %reason, "inbound mail will be retried");
                    transient.push(reason);
                }
            }
        }
        if let Some(first) = transient.first() {
            return Err(InboundFunctionError::Transient {
                failed: transient.len(),
                total,
                first: first.clone(),
            });
        }
        Ok(InboundReport { records: reports })
    }

    /// Ok = done for good (stored, duplicate or recorded as rejected); Err = retry.
    async fn handle_record(&self, record: &SimpleEmailRecord) -> Result<RecordReport, String> {
        let env = StepEnv::new(&self.config, self.clock.as_ref());
        let Some(ses_id) = record.ses.mail.message_id.clone().filter(|id| !id.is_empty() && !id.contains('/')) else {
            let rejected = RejectedMail {
                key: format!("no-ses-id-{}", uuid_like(record)),
                received_at: self.clock.now(),
                reason: "SES record has no usable messageId".into(),
                from: record.ses.mail.source.clone(),
                subject: record.ses.mail.common_headers.subject.clone(),
                message_id: record.ses.mail.common_headers.message_id.clone(),
                raw_location: None,
                size: 0,
            };
            self.store.record_rejected(rejected).await.map_err(|e| e.to_string())?;
            return Ok(RecordReport {
                ses_message_id: String::new(),
                outcome: "rejected: no SES messageId".into(),
                case_id: None,
            });
        };
        let key = format!("{}{}", self.key_prefix, ses_id);
        let location = self.raw_mail.location(&key);
        let raw = match self.raw_mail.fetch(&key, self.config.inbound.max_mail_bytes).await {
            Ok(raw) => raw,
            Err(e @ (RawMailError::NotFound(_) | RawMailError::TooLarge { .. })) => {
                let rejected = RejectedMail {
                    key: ses_id.clone(),
                    received_at: self.clock.now(),
                    reason: e.to_string(),
                    from: record.ses.mail.source.clone(),
                    subject: record.ses.mail.common_headers.subject.clone(),
                    message_id: record.ses.mail.common_headers.message_id.clone(),
                    raw_location: Some(location),
                    size: 0,
                };
                self.store.record_rejected(rejected).await.map_err(|e| e.to_string())?;
                tracing::warn!(ses_message_id = %ses_id, reason = %e, "inbound mail rejected");
                return Ok(RecordReport {
                    ses_message_id: ses_id,
                    outcome: format!("rejected: {e}"),
                    case_id: None,
                });
            }
            Err(e) => return Err(e.to_string()),
        };
        let verdicts = verdicts(record);
        let attachment_locations = self.copy_attachments(&ses_id, &raw, &verdicts).await?;
        let delivery = InboundDelivery {
            raw: &raw,
            delivery_id: ses_id.clone(),
            raw_location: Some(location),
            verdicts,
            attachment_locations,
        };
        match ingest(env, &self.store, self.classifier.as_ref(), delivery).await {
            Ok(outcome) => Ok(report(ses_id, outcome)),
            Err(e) if e.is_retryable() => Err(e.to_string()),
            Err(e) => Ok(RecordReport {
                ses_message_id: ses_id,
                outcome: format!("failed: {e}"),
                case_id: None,
            }),
        }
    }
}

impl<S: Store, R: RawMailSource> InboundFunction<S, R> {
    /// Copies each attachment to `<prefix><SES id>/<n>` so agents can fetch it
    /// by the reference on the mail record. Before the mail is stored, so a
    /// stored reference always points at content; a retry rewrites the same keys.
    /// Mail flagged as carrying a virus is never copied.
    async fn copy_attachments(&self, ses_id: &str, raw: &[u8], verdicts: &Verdicts) -> Result<Vec<String>, String> {
        if verdicts.virus.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("FAIL")) {
            return Ok(Vec::new());
        }
        let mut locations = Vec::new();
        for body in casebridge::inbound::attachment_bodies(raw, self.config.inbound.max_mail_bytes) {
            let key = format!("{}{}/{}", self.config.inbound.attachment_prefix, ses_id, body.index);
            let location = self
                .raw_mail
                .put(&key, body.content, &body.content_type)
                .await
                .map_err(|e| e.to_string())?;
            locations.push(location);
        }
        Ok(locations)
    }
}

fn uuid_like(record: &SimpleEmailRecord) -> String {
    record.ses.mail.timestamp.timestamp_millis().to_string()
}

fn report(ses_message_id: String, outcome: IngestOutcome) -> RecordReport {
    match outcome {
        IngestOutcome::Stored {
            case_id,
            new_case,
            work_item,
            ..
        } => RecordReport {
            ses_message_id,
            outcome: match (new_case, work_item.is_some()) {
                (true, true) => "new case; agent turn requested",
                (true, false) => "new case; no agent turn",
                (false, true) => "added to case; agent turn requested",
                (false, false) => "added to case; no agent turn",
            }
            .into(),
            case_id: Some(case_id.to_string()),
        },
        IngestOutcome::Duplicate { .. } => RecordReport {
            ses_message_id,
            outcome: "duplicate".into(),
            case_id: None,
        },
        IngestOutcome::Rejected { reason } => RecordReport {
            ses_message_id,
            outcome: format!("rejected: {reason}"),
            case_id: None,
        },
    }
}

impl From<InboundFunctionError> for lambda_runtime::Diagnostic {
    fn from(e: InboundFunctionError) -> Self {
        let error_type = match e {
            InboundFunctionError::Transient { .. } => "casebridge.inbound.Transient",
            InboundFunctionError::BadRequest(_) => "casebridge.inbound.BadRequest",
            InboundFunctionError::Setup(_) => "casebridge.inbound.Setup",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}
