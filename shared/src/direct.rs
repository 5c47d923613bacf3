//! Direct invocations of the functions (`aws lambda invoke`, `cargo lambda
//! invoke`), besides the events their triggers send.

use serde::Deserialize;

/// `{"action": "reprocess", "caseId": "CB-…"}`: re-enter the pipeline for a
/// case at the invoked function's step (inbound: route again and open a turn;
/// agent: open a turn; outcome: carry out, send pending and failed mail).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprocessRequest {
    pub action: String,
    pub case_id: String,
}

impl ReprocessRequest {
    /// Reads a reprocess request from an invocation payload, if it is one.
    pub fn from_event(event: &serde_json::Value) -> Option<ReprocessRequest> {
        serde_json::from_value::<ReprocessRequest>(event.clone())
            .ok()
            .filter(|r| r.action == "reprocess")
    }
}

/// What a direct invocation answers.
pub fn outcome_json(outcome: &crate::pipeline::representative::ActionOutcome) -> serde_json::Value {
    match outcome {
        crate::pipeline::representative::ActionOutcome::Done { detail } => serde_json::json!({"status": "done", "detail": detail}),
        crate::pipeline::representative::ActionOutcome::Refused { reason } => serde_json::json!({"status": "refused", "reason": reason}),
    }
}
