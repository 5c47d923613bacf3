//! The case and everything stored under it. Every record is a plain serde
//! document so both store adapters keep it the same way.
//!
//! Empty lists and absent values are not written (`skip_serializing_if`)
//! and read back as their defaults: DynamoDB bills writes per started KB
//! (twice inside a transaction), and a case head of ~1 KB is written on
//! every step, so a hundred bytes of `null`s can double its cost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::CaseId;
use crate::protocol::AgentResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowMode {
    /// Agent mail is sent without a human in the loop.
    FullyAutonomous,
    /// Agent mail becomes a draft a representative reviews and sends.
    SemiAutonomous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// A turn is in flight: the agent has been or is about to be called.
    AgentWorking,
    /// casebridge asked the customer something and waits for the answer.
    WaitingOnCustomer,
    /// A draft waits for a representative.
    PendingReview,
    /// A resolution went (or is drafted) to the customer.
    Resolved,
    /// A representative owns the case; agents are not called.
    Escalated,
    /// The agent chose to do nothing; the case waits for new mail.
    Idle,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::AgentWorking => "agent_working",
            CaseStatus::WaitingOnCustomer => "waiting_on_customer",
            CaseStatus::PendingReview => "pending_review",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Escalated => "escalated",
            CaseStatus::Idle => "idle",
            CaseStatus::Closed => "closed",
        }
    }

    pub const ALL: [CaseStatus; 7] = [
        CaseStatus::AgentWorking,
        CaseStatus::WaitingOnCustomer,
        CaseStatus::PendingReview,
        CaseStatus::Resolved,
        CaseStatus::Escalated,
        CaseStatus::Idle,
        CaseStatus::Closed,
    ];
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub queue: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    /// Optimistic-concurrency version; the store bumps it on every write.
    pub version: u64,
    pub status: CaseStatus,
    pub workflow: WorkflowMode,
    pub subject: String,
    pub customer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// Sent to the agent on every turn; stable for the life of the case.
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_confidence: Option<f64>,
    /// The classifier's top scores when the case was routed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intent_scores: Vec<crate::intent::IntentScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Addresses allowed to add mail to the case by subject reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    /// Message-IDs of the thread in order, for References.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thread_message_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_message_id: Option<String>,
    /// The turn whose answer has not been carried out yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_in_flight: Option<String>,
    /// Customer mail stored while a turn was in flight, for the next turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_mail: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// The named workflow the case runs under (none = the default workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// The active follow-up record, while reminders are pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
    /// How the case was last resolved or closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Times the customer wrote again after the case was closed.
    #[serde(default)]
    pub reopened: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Resolution accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionKind {
    /// The customer said the problem is solved.
    Confirmed,
    /// Closed after the customer stayed silent through the follow-ups.
    Assumed,
    /// The agent closed the case (ResolveCase).
    ClosedByAgent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub kind: ResolutionKind,
    pub at: DateTime<Utc>,
}

impl Case {
    /// Compared in normal form (`crate::address`); what is not an address is
    /// nobody's.
    pub fn is_participant(&self, address: &str) -> bool {
        let Some(address) = crate::address::normalize(address) else {
            return false;
        };
        self.participants
            .iter()
            .any(|p| crate::address::normalize(p).is_some_and(|p| p == address))
    }

    pub fn add_participant(&mut self, address: &str) {
        if let Some(address) = crate::address::normalize(address) {
            if !self.is_participant(&address) {
                self.participants.push(address);
            }
        }
    }

    /// Agents are called only for cases nobody human holds and that are open.
    pub fn agents_may_work(&self) -> bool {
        !matches!(self.status, CaseStatus::Escalated | CaseStatus::Closed)
    }

    /// The typed view of the lifecycle fields. Total: a stored case whose
    /// fields disagree (written before the reducer existed) still reads as a
    /// state, with the missing data filled from what is there.
    pub fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        use crate::lifecycle::{CaseState, Lifecycle};
        let state = match self.status {
            CaseStatus::AgentWorking => CaseState::AgentWorking,
            CaseStatus::WaitingOnCustomer => CaseState::WaitingOnCustomer,
            CaseStatus::PendingReview => CaseState::PendingReview,
            CaseStatus::Resolved => CaseState::Resolved {
                follow_up: self.follow_up.clone(),
            },
            CaseStatus::Escalated => CaseState::Escalated(self.escalation.clone().unwrap_or_else(|| Escalation {
                queue: String::new(),
                reason: "escalated".into(),
                at: self.updated_at,
            })),
            CaseStatus::Idle => CaseState::Idle,
            CaseStatus::Closed => CaseState::Closed {
                at: self.closed_at.unwrap_or(self.updated_at),
                resolution: self.resolution.clone(),
            },
        };
        Lifecycle {
            state,
            turn: self.turn_in_flight.clone(),
            pending: self.pending_mail.clone(),
            reopened: self.reopened,
        }
    }

    /// The only writer of the lifecycle fields (see `crate::lifecycle`). The
    /// last resolution is history and stays when a closed case reopens.
    pub fn set_lifecycle(&mut self, lifecycle: crate::lifecycle::Lifecycle) {
        use crate::lifecycle::CaseState;
        self.status = lifecycle.state.status();
        self.escalation = None;
        self.follow_up = None;
        self.closed_at = None;
        match lifecycle.state {
            CaseState::Escalated(escalation) => self.escalation = Some(escalation),
            CaseState::Resolved { follow_up } => self.follow_up = follow_up,
            CaseState::Closed { at, resolution } => {
                self.closed_at = Some(at);
                if resolution.is_some() {
                    self.resolution = resolution;
                }
            }
            CaseState::AgentWorking | CaseState::WaitingOnCustomer | CaseState::PendingReview | CaseState::Idle => {}
        }
        self.turn_in_flight = lifecycle.turn;
        self.pending_mail = lifecycle.pending;
        self.reopened = lifecycle.reopened;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What casebridge made of an inbound mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Disposition {
    /// Customer mail that goes to the agent.
    Accepted,
    /// Stored, never answered (auto-reply, bounce, own mail, list traffic...).
    Ignored(String),
    /// Stored, never shown to an agent nor answered (verdict policy).
    Quarantined(String),
}

impl Disposition {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Disposition::Accepted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
    /// Where agents can fetch the content (e.g. `s3://bucket/attachments/<id>/0`), when copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// An inbound mail as stored on its case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailRecord {
    pub id: String,
    pub direction: Direction,
    pub message_id: String,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Text body as received (bounded).
    pub body_text: String,
    /// What the customer wrote this time, without quoted history or signature.
    pub new_text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentMeta>,
    pub disposition: Disposition,
    /// Where the raw MIME is (e.g. `s3://bucket/key`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    /// Short machine-readable kind, e.g. `mail_received`, `agent_answered`.
    pub kind: String,
    /// One human-readable line; never a mail body or a secret.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemStatus {
    Pending,
}

/// A request for one agent turn; its stream record triggers the agent function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub id: String,
    /// The inbound mail records this turn answers.
    pub mail_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub status: WorkItemStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The agent call was claimed; the answer is not stored yet.
    InFlight,
    /// An async agent accepted the turn (202); its answer comes on the callback route.
    AwaitingCallback,
    /// The answer (or the failure) is stored and waits to be carried out.
    Answered,
    /// The answer was carried out.
    Done,
    /// The case could not be worked by an agent (escalated or closed meanwhile).
    Skipped,
}

impl TurnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::InFlight => "in_flight",
            TurnStatus::AwaitingCallback => "awaiting_callback",
            TurnStatus::Answered => "answered",
            TurnStatus::Done => "done",
            TurnStatus::Skipped => "skipped",
        }
    }
}

/// What came of calling the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TurnResult {
    Answered { response: AgentResponse },
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTurn {
    pub id: String,
    pub work_item: String,
    pub agent: String,
    pub mail_ids: Vec<String>,
    pub status: TurnStatus,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TurnResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// While in flight or awaiting a callback: when the sweep gives up on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// An A2A agent's task left waiting for the customer (the turn's answer
    /// is a question): the case's next turn continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_task: Option<String>,
}

impl AgentTurn {
    /// The id agents see (request `turnId`, callback route): `<case id>.<sequence>`.
    pub fn public_id(&self, case: &crate::ids::CaseId) -> String {
        format!("{case}.{}", self.id.trim_start_matches("TURN#"))
    }
}

/// Reads a public turn id back into (case id, turn record key).
pub fn parse_public_turn_id(text: &str) -> Option<(crate::ids::CaseId, String)> {
    let (case, sequence) = text.rsplit_once('.')?;
    let case = crate::ids::CaseId::parse(case)?;
    (sequence.len() == 10 && sequence.bytes().all(|b| b.is_ascii_digit())).then(|| (case, format!("TURN#{sequence}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Question,
    Resolution,
    EscalationNotice,
    Reminder,
    ClosureNotice,
}

impl MailKind {
    /// Mail whose text an agent wrote (counted against the per-case cap).
    pub fn is_ai_written(self) -> bool {
        matches!(self, MailKind::Question | MailKind::Resolution)
    }
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Question => "question",
            MailKind::Resolution => "resolution",
            MailKind::EscalationNotice => "escalation_notice",
            MailKind::Reminder => "reminder",
            MailKind::ClosureNotice => "closure_notice",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    PendingReview,
    Sent,
    Discarded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub id: String,
    pub turn: String,
    pub kind: MailKind,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Why it is a draft: semi-autonomous workflow, needsReview, ...
    pub reason: String,
    pub answer: AgentResponse,
    pub status: DraftStatus,
    pub created_at: DateTime<Utc>,
    /// Sent with a body the representative changed (the report's "share
    /// edited"). Drafts stored before this field existed read as unedited.
    #[serde(default)]
    pub edited: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundStatus {
    /// Written; nobody has started sending it.
    Pending,
    /// Claimed by a sender; if this stays, the send outcome is unknown.
    Sending,
    Sent,
    Failed,
}

impl OutboundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundStatus::Pending => "pending",
            OutboundStatus::Sending => "sending",
            OutboundStatus::Sent => "sent",
            OutboundStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMail {
    pub id: String,
    pub kind: MailKind,
    /// The record that caused it: a turn, a draft or a follow-up.
    #[serde(alias = "turn")]
    pub origin: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    pub status: OutboundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exact MIME handed to the mail provider (kept for audit and re-send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mime: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpStatus {
    Active,
    /// The customer wrote, or the case changed: no more reminders.
    Cancelled,
    /// All reminders sent and the case closed.
    Done,
}

/// Reminders after a resolution, then closure, while the customer is silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub id: String,
    pub reminders_sent: u32,
    pub status: FollowUpStatus,
    /// When the next reminder (or the closure) is due, while active.
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A mail that could not be tied to any case (unparseable, oversized, a bounce
/// for nobody, new mail while case creation is off...). Kept with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedMail {
    pub key: String,
    pub received_at: DateTime<Utc>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_location: Option<String>,
    pub size: usize,
}

/// Everything stored under a case besides the case itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record_type", content = "doc")]
pub enum Record {
    Mail(MailRecord),
    Event(TimelineEvent),
    WorkItem(WorkItem),
    Turn(AgentTurn),
    Draft(Draft),
    Outbound(OutboundMail),
    FollowUp(FollowUp),
}

/// The kinds of record, with the sort-key prefix each lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Mail,
    Event,
    WorkItem,
    Turn,
    Draft,
    Outbound,
    FollowUp,
}

impl RecordKind {
    pub const ALL: [RecordKind; 7] = [
        RecordKind::Mail,
        RecordKind::Event,
        RecordKind::WorkItem,
        RecordKind::Turn,
        RecordKind::Draft,
        RecordKind::Outbound,
        RecordKind::FollowUp,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            RecordKind::Mail => "MSG#",
            RecordKind::Event => "EVT#",
            RecordKind::WorkItem => "WORK#",
            RecordKind::Turn => "TURN#",
            RecordKind::Draft => "DRAFT#",
            RecordKind::Outbound => "OUT#",
            RecordKind::FollowUp => "FUP#",
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            RecordKind::Mail => "Mail",
            RecordKind::Event => "Event",
            RecordKind::WorkItem => "WorkItem",
            RecordKind::Turn => "Turn",
            RecordKind::Draft => "Draft",
            RecordKind::Outbound => "Outbound",
            RecordKind::FollowUp => "FollowUp",
        }
    }

    pub fn of_key(key: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| key.starts_with(k.prefix()))
    }
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Mail(_) => RecordKind::Mail,
            Record::Event(_) => RecordKind::Event,
            Record::WorkItem(_) => RecordKind::WorkItem,
            Record::Turn(_) => RecordKind::Turn,
            Record::Draft(_) => RecordKind::Draft,
            Record::Outbound(_) => RecordKind::Outbound,
            Record::FollowUp(_) => RecordKind::FollowUp,
        }
    }

    /// The record's sort key within its case; always starts with its kind's prefix.
    pub fn key(&self) -> &str {
        match self {
            Record::Mail(r) => &r.id,
            Record::Event(r) => &r.id,
            Record::WorkItem(r) => &r.id,
            Record::Turn(r) => &r.id,
            Record::Draft(r) => &r.id,
            Record::Outbound(r) => &r.id,
            Record::FollowUp(r) => &r.id,
        }
    }

    /// A status string for records that have one; stored as its own attribute
    /// so stream filters and conditional writes can use it.
    /// What caused a record, for records that say (outbound mail).
    pub fn origin(&self) -> Option<&str> {
        match self {
            Record::Outbound(o) => o.origin.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<&'static str> {
        match self {
            Record::Turn(t) => Some(t.status.as_str()),
            Record::Outbound(o) => Some(o.status.as_str()),
            Record::Draft(d) => Some(match d.status {
                DraftStatus::PendingReview => "pending_review",
                DraftStatus::Sent => "sent",
                DraftStatus::Discarded => "discarded",
            }),
            Record::WorkItem(_) => Some("pending"),
            Record::FollowUp(f) => Some(match f.status {
                FollowUpStatus::Active => "active",
                FollowUpStatus::Cancelled => "cancelled",
                FollowUpStatus::Done => "done",
            }),
            Record::Mail(_) | Record::Event(_) => None,
        }
    }

    /// When the sweep must look at this record again, if ever. Records with a
    /// due time are kept in the store's due index; others are not.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::Turn(t) if matches!(t.status, TurnStatus::InFlight | TurnStatus::AwaitingCallback) => t.due_at,
            Record::FollowUp(f) if f.status == FollowUpStatus::Active => f.due_at,
            _ => None,
        }
    }

    pub fn into_mail(self) -> Option<MailRecord> {
        match self {
            Record::Mail(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_event(self) -> Option<TimelineEvent> {
        match self {
            Record::Event(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_work_item(self) -> Option<WorkItem> {
        match self {
            Record::WorkItem(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_turn(self) -> Option<AgentTurn> {
        match self {
            Record::Turn(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_draft(self) -> Option<Draft> {
        match self {
            Record::Draft(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_follow_up(self) -> Option<FollowUp> {
        match self {
            Record::FollowUp(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_outbound(self) -> Option<OutboundMail> {
        match self {
            Record::Outbound(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::CaseId;

    #[test]
    fn participants_are_compared_in_normal_form() {
        let mut case = crate::testing::sample_case(&CaseId::generate("CB"));
        case.participants.clear();
        case.add_participant("\"john smith\"@BigCorp.example");
        case.add_participant("@bigcorp.example");
        assert_eq!(
            case.participants,
            ["\"john smith\"@bigcorp.example"],
            "no address without a local part"
        );
        assert!(case.is_participant("\"John Smith\"@bigcorp.example"));
        assert!(!case.is_participant("\"mallory\"@bigcorp.example"));
        assert!(!case.is_participant("mallory@bigcorp.example"));
        assert!(!case.is_participant("@bigcorp.example"));
        case.add_participant("Ann@Customer.Test");
        case.add_participant("\"ann\"@customer.test");
        assert_eq!(case.participants.len(), 2, "one mailbox, however it is written");
    }
}
