//! The case context an agent fetches (SPEC §1): subject, customer, status,
//! intent, conversation id, the thread and the previous agent turns.

use serde::Serialize;

use crate::ids::CaseId;
use crate::model::{AgentTurn, AttachmentMeta, Case, Direction, MailRecord, OutboundMail, OutboundStatus, Record, RecordKind, TurnResult};
use crate::pipeline::PipelineError;
use crate::store::Store;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseContext {
    pub case_id: String,
    pub conversation_id: String,
    pub subject: String,
    pub customer: ContextCustomer,
    pub status: String,
    pub intent: Option<String>,
    pub intent_confidence: Option<f64>,
    /// The classifier's top scores, best first.
    pub intent_scores: Vec<crate::intent::IntentScore>,
    /// A second request in the first mail (another intent than the one the
    /// case was routed by), for the agent to answer too or hand over.
    pub second_intent: Option<crate::intent::IntentScore>,
    pub thread: Vec<ContextMail>,
    pub turns: Vec<ContextTurn>,
    /// Drafts a representative sent back to the agent, oldest first: who,
    /// which draft and what to change, as on the timeline. The latest is
    /// what the current turn is asked to address.
    pub representative_notes: Vec<ContextNote>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextNote {
    pub at: chrono::DateTime<chrono::Utc>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextCustomer {
    pub email: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextMail {
    pub direction: Direction,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// What the sender wrote this time.
    pub new_text: String,
    pub full_text: String,
    pub attachments: Vec<AttachmentMeta>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextTurn {
    pub turn_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub response_type: Option<String>,
    pub message: Option<String>,
    pub error: Option<String>,
}

fn from_inbound(m: MailRecord) -> ContextMail {
    ContextMail {
        direction: m.direction,
        from: m.from,
        to: m.to,
        subject: m.subject,
        at: m.received_at,
        new_text: m.new_text,
        full_text: m.body_text,
        attachments: m.attachments,
    }
}

fn from_outbound(m: OutboundMail) -> ContextMail {
    ContextMail {
        direction: Direction::Outbound,
        from: m.from,
        to: m.to,
        subject: m.subject,
        at: m.sent_at.unwrap_or(m.created_at),
        new_text: m.body.clone(),
        full_text: m.body,
        attachments: Vec::new(),
    }
}

fn from_turn(t: AgentTurn) -> ContextTurn {
    let (response_type, message, error) = match t.result {
        Some(TurnResult::Answered { response }) => (Some(response.response_type.to_string()), response.message, None),
        Some(TurnResult::Failed { reason }) => (None, None, Some(reason)),
        None => (None, None, None),
    };
    ContextTurn {
        turn_id: t.id,
        started_at: t.started_at,
        response_type,
        message,
        error,
    }
}

/// Builds the context from the store. Only accepted customer mail and mail
/// actually sent to the customer are part of the thread an agent sees.
pub async fn case_context<S: Store>(store: &S, id: &CaseId) -> Result<(Case, CaseContext), PipelineError> {
    let case = store.get_case(id).await?.ok_or_else(|| PipelineError::CaseNotFound(id.clone()))?;
    let mut thread: Vec<ContextMail> = store
        .list_records(id, RecordKind::Mail)
        .await?
        .into_iter()
        .filter_map(Record::into_mail)
        .filter(|m| m.disposition.is_accepted())
        .map(from_inbound)
        .collect();
    thread.extend(
        store
            .list_records(id, RecordKind::Outbound)
            .await?
            .into_iter()
            .filter_map(Record::into_outbound)
            .filter(|o| o.status == OutboundStatus::Sent && o.kind != crate::model::MailKind::EscalationNotice)
            .map(from_outbound),
    );
    thread.sort_by_key(|m| m.at);
    let turns = store
        .list_records(id, RecordKind::Turn)
        .await?
        .into_iter()
        .filter_map(Record::into_turn)
        .map(from_turn)
        .collect();
    let mut representative_notes: Vec<ContextNote> = store
        .list_records(id, RecordKind::Event)
        .await?
        .into_iter()
        .filter_map(|r| match r {
            Record::Event(e) if e.kind == crate::pipeline::representative::SENT_BACK => Some(ContextNote { at: e.at, text: e.detail }),
            _ => None,
        })
        .collect();
    representative_notes.sort_by_key(|n| n.at);
    let context = CaseContext {
        case_id: case.id.to_string(),
        conversation_id: case.conversation_id.clone(),
        subject: case.subject.clone(),
        customer: ContextCustomer {
            email: case.customer.clone(),
            name: case.customer_name.clone(),
        },
        status: case.status.to_string(),
        intent: case.intent.clone(),
        intent_confidence: case.intent_confidence,
        intent_scores: case.intent_scores.clone(),
        second_intent: case.intent_scores.iter().find(|s| s.second_request).cloned(),
        thread,
        turns,
        representative_notes,
    };
    Ok((case, context))
}

/// A readable case timeline: one line per event.
pub async fn timeline_lines<S: Store>(store: &S, id: &CaseId) -> Result<Vec<String>, PipelineError> {
    let events = store.list_records(id, RecordKind::Event).await?;
    Ok(events
        .into_iter()
        .filter_map(Record::into_event)
        .map(|e| format!("{}  {:<22} {}", e.at.format("%H:%M:%S%.3f"), e.kind, e.detail))
        .collect())
}
