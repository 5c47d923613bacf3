//! Agent invocation function.
//!
//! - DynamoDB stream records of new work items → one agent turn each. Returns
//!   batch item failures so only failed records are retried; the turn claim in
//!   the store makes a retried record a no-op. Retries inside a turn stop
//!   before the invocation's deadline.
//! - A scheduled event (`{"action": "sweep"}`, or an EventBridge "Scheduled
//!   Event") fails turns past their due time — async answers that never came,
//!   calls lost with their function — so their cases escalate.
//! - `{"action": "reprocess", "caseId": "…"}` opens a new turn for the case's
//!   latest customer mail (the stream then calls the agent).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use casebridge::agent_client::AgentClient;
use casebridge::config::Config;
use casebridge::pipeline::agent::{run_turn, sweep_overdue};
use casebridge::pipeline::{Clock, PipelineError, StepEnv};
use casebridge::store::Store;
use casebridge::stream::process_batch;
use casebridge::triggers::{on_schedule, Function, Step};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Turns looked at per sweep; the schedule runs often, so a backlog drains.
pub const SWEEP_LIMIT: usize = 200;

pub struct AgentFunction<S, A> {
    pub store: S,
    pub agents: A,
    pub config: Config,
    pub clock: Box<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentFunctionError {
    #[error("event is neither DynamoDB stream records nor a sweep request")]
    UnknownEvent,
    #[error("stream event could not be decoded: {0}")]
    BadStreamEvent(String),
    #[error("not a case id")]
    BadCaseId,
    #[error("failed: {0}")]
    Sweep(#[from] PipelineError),
    /// Building the clients on the first event failed (e.g. a secret could not be read).
    #[error("setup failed: {0}")]
    Setup(String),
}

impl From<AgentFunctionError> for lambda_runtime::Diagnostic {
    fn from(e: AgentFunctionError) -> Self {
        let error_type = match e {
            AgentFunctionError::UnknownEvent => "casebridge.agent.UnknownEvent",
            AgentFunctionError::BadStreamEvent(_) => "casebridge.agent.BadStreamEvent",
            AgentFunctionError::Sweep(_) => "casebridge.agent.Failed",
            AgentFunctionError::BadCaseId => "casebridge.agent.BadCaseId",
            AgentFunctionError::Setup(_) => "casebridge.agent.Setup",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// `{"action": "sweep"}` (the trigger table's schedule), or an EventBridge
/// scheduled event.
fn is_sweep_request(event: &Value) -> bool {
    let action = event.get("action").and_then(Value::as_str).and_then(on_schedule);
    action.is_some_and(|s| s.step == Step::SweepOverdue) || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

impl<S: Store, A: AgentClient> AgentFunction<S, A> {
    /// Entry point for whatever Lambda delivers.
    pub async fn handle_any(&self, event: Value, deadline: Option<DateTime<Utc>>) -> Result<Value, AgentFunctionError> {
        if event.get("Records").is_some() {
            let stream: Event = serde_json::from_value(event).map_err(|e| AgentFunctionError::BadStreamEvent(e.to_string()))?;
            let response = self.handle(stream, deadline).await;
            return serde_json::to_value(response).map_err(|e| AgentFunctionError::BadStreamEvent(e.to_string()));
        }
        if let Some(request) = casebridge::direct::ReprocessRequest::from_event(&event) {
            let case = casebridge::ids::CaseId::parse(&request.case_id).ok_or(AgentFunctionError::BadCaseId)?;
            let env = StepEnv::new(&self.config, self.clock.as_ref());
            let outcome = casebridge::pipeline::representative::reopen_turn(env, &self.store, None, &case).await?;
            return Ok(casebridge::direct::outcome_json(&outcome));
        }
        if is_sweep_request(&event) {
            let swept = self.sweep().await?;
            return Ok(json!({ "swept": swept }));
        }
        Err(AgentFunctionError::UnknownEvent)
    }

    pub async fn handle(&self, event: Event, deadline: Option<DateTime<Utc>>) -> DynamoDbEventResponse {
        let env = StepEnv {
            config: &self.config,
            clock: self.clock.as_ref(),
            deadline,
        };
        process_batch(event, Function::AgentInvocationFunction, |target, _step| async move {
            // The table gives this function one step: the agent turn.
            run_turn(env, &self.store, &self.agents, &target.case_id, &target.key)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Fails overdue turns; returns `case/turn` of each.
    pub async fn sweep(&self) -> Result<Vec<String>, PipelineError> {
        let env = StepEnv::new(&self.config, self.clock.as_ref());
        let swept = sweep_overdue(env, &self.store, SWEEP_LIMIT).await?;
        Ok(swept.into_iter().map(|(case, turn)| format!("{case}/{turn}")).collect())
    }
}
