//! Outcome actions function.
//!
//! - DynamoDB stream records of answered turns → the decision table's plan
//!   carried out (mail sent or drafted, follow-up scheduled, escalation,
//!   closure). Returns batch item failures so only failed records are
//!   retried; the outbound claim makes a retried record never send twice.
//! - A scheduled event (`{"action": "follow_up"}`, or an EventBridge
//!   "Scheduled Event") sends due reminders and closes cases whose customer
//!   stayed silent.
//! - `{"action": "reprocess", "caseId": "…"}` carries out the case's answered
//!   turns again and sends its pending and failed mail.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use casebridge::config::Config;
use casebridge::mail::MailSender;
use casebridge::pipeline::outcome::{carry_out, flush_origin, run_follow_ups};
use casebridge::pipeline::{Clock, PipelineError, StepEnv};
use casebridge::store::Store;
use casebridge::stream::process_batch;
use casebridge::triggers::{on_schedule, Function, Step};
use serde_json::{json, Value};

/// Follow-ups handled per scheduled run; the schedule runs often, so a backlog drains.
pub const FOLLOW_UP_LIMIT: usize = 200;

pub struct OutcomeFunction<S, M> {
    pub store: S,
    pub mailer: M,
    pub config: Config,
    pub clock: Box<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutcomeFunctionError {
    #[error("event is neither DynamoDB stream records nor a follow-up request")]
    UnknownEvent,
    #[error("stream event could not be decoded: {0}")]
    BadStreamEvent(String),
    #[error("not a case id")]
    BadCaseId,
    #[error("failed: {0}")]
    FollowUps(#[from] PipelineError),
}

impl From<OutcomeFunctionError> for lambda_runtime::Diagnostic {
    fn from(e: OutcomeFunctionError) -> Self {
        let error_type = match e {
            OutcomeFunctionError::UnknownEvent => "casebridge.outcome.UnknownEvent",
            OutcomeFunctionError::BadStreamEvent(_) => "casebridge.outcome.BadStreamEvent",
            OutcomeFunctionError::FollowUps(_) => "casebridge.outcome.Failed",
            OutcomeFunctionError::BadCaseId => "casebridge.outcome.BadCaseId",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

impl<S: Store, M: MailSender> OutcomeFunction<S, M> {
    /// Entry point for whatever Lambda delivers.
    pub async fn handle_any(&self, event: Value) -> Result<Value, OutcomeFunctionError> {
        if event.get("Records").is_some() {
            let stream: Event = serde_json::from_value(event).map_err(|e| OutcomeFunctionError::BadStreamEvent(e.to_string()))?;
            let response = self.handle(stream).await;
            return serde_json::to_value(response).map_err(|e| OutcomeFunctionError::BadStreamEvent(e.to_string()));
        }
        if let Some(request) = casebridge::direct::ReprocessRequest::from_event(&event) {
            let case = casebridge::ids::CaseId::parse(&request.case_id).ok_or(OutcomeFunctionError::BadCaseId)?;
            let env = StepEnv::new(&self.config, self.clock.as_ref());
            let outcome = casebridge::pipeline::representative::reprocess_outcome(env, &self.store, &self.mailer, &case).await?;
            return Ok(casebridge::direct::outcome_json(&outcome));
        }
        let action = event.get("action").and_then(Value::as_str).and_then(on_schedule);
        let scheduled = action.is_some_and(|s| s.step == Step::FollowUps)
            || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
        if scheduled {
            return Ok(json!({ "followUps": self.follow_ups().await? }));
        }
        Err(OutcomeFunctionError::UnknownEvent)
    }

    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let env = StepEnv::new(&self.config, self.clock.as_ref());
        process_batch(event, Function::OutcomeActionsFunction, |target, step| async move {
            match (step, target.origin.as_deref()) {
                (Step::SendNotice, Some(origin)) => flush_origin(env, &self.store, &self.mailer, &target.case_id, origin)
                    .await
                    .map(|_| ()),
                _ => carry_out(env, &self.store, &self.mailer, &target.case_id, &target.key)
                    .await
                    .map(|_| ()),
            }
        })
        .await
    }

    /// Sends due reminders and closes silent cases; returns what was done.
    pub async fn follow_ups(&self) -> Result<Vec<String>, PipelineError> {
        let env = StepEnv::new(&self.config, self.clock.as_ref());
        run_follow_ups(env, &self.store, &self.mailer, FOLLOW_UP_LIMIT).await
    }
}
