//! Outcome step: carry out a stored agent answer. The plan comes from the
//! decision table; this step only writes what the plan says.
//!
//! Exactly-once mail: the outbound record is created (create-only) together
//! with the plan, then claimed `pending → sending` before SES is called, and
//! marked `sent` after. If the function dies between the SES call and the
//! `sent` write, the record stays `sending`: it is never re-sent on its own
//! (a duplicate to a customer is worse than a visible "unknown"), and an
//! operator can check and re-send it.

use chrono::{DateTime, Utc};

use super::{load_case, PipelineError, StepEnv, Timeline, MAX_CONFLICT_RETRIES};
use crate::decision::{decide, Action, Plan, Situation};
use crate::ids::{ses_message_key, CaseId};
use crate::mail::{compose, reply_subject, Composition, MailError, MailSender, OutgoingMail};
use crate::model::{
    Case, CaseStatus, Draft, DraftStatus, Escalation, MailKind, OutboundMail, OutboundStatus,
    Record, RecordKind, TurnResult, TurnStatus, WorkItem, WorkItemStatus,
};
use crate::store::{CaseWrite, Commit, CommitError, MessageIndexEntry, RecordWrite, Store};

/// References kept on outbound mail; enough for every client to thread.
const MAX_REFERENCES: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeReport {
    pub turn: String,
    /// The plan carried out now; None when an earlier run already did.
    pub plan: Option<Plan>,
    pub sent: Vec<String>,
    pub failed: Vec<String>,
    /// A work item opened for mail that arrived while the turn was in flight.
    pub next_work_item: Option<String>,
}

pub async fn carry_out<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    turn_key: &str,
) -> Result<OutcomeReport, PipelineError> {
    let (plan, next_work_item) = apply_plan(env, store, case_id, turn_key).await?;
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    // A permanent failure queues an escalation notice, hence a second pass.
    for _ in 0..3 {
        let pending: Vec<OutboundMail> = store
            .list_records(case_id, RecordKind::Outbound)
            .await?
            .into_iter()
            .filter_map(Record::into_outbound)
            .filter(|o| o.turn.as_deref() == Some(turn_key) && o.status == OutboundStatus::Pending)
            .collect();
        if pending.is_empty() {
            break;
        }
        for outbound in pending {
            match send_one(env, store, mailer, case_id, outbound).await? {
                Some((id, true)) => sent.push(id),
                Some((id, false)) => failed.push(id),
                None => {}
            }
        }
    }
    Ok(OutcomeReport {
        turn: turn_key.to_string(),
        plan,
        sent,
        failed,
        next_work_item,
    })
}

async fn apply_plan<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    turn_key: &str,
) -> Result<(Option<Plan>, Option<String>), PipelineError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut case = load_case(store, case_id).await?;
        let mut turn = store
            .get_record(case_id, turn_key)
            .await?
            .and_then(Record::into_turn)
            .ok_or_else(|| PipelineError::RecordNotFound(format!("{case_id}/{turn_key}")))?;
        if turn.status != TurnStatus::Answered {
            return Ok((None, None));
        }
        let result = turn.result.clone().unwrap_or(TurnResult::Failed {
            reason: "the turn has no stored result".into(),
        });
        let plan = decide(Situation {
            case_status: case.status,
            workflow: case.workflow,
            result: &result,
        });
        let now = env.clock.now();
        let mut timeline = Timeline::for_commit(&case, now);
        let mut commit = Commit::new(case_id.clone());
        let suffix = turn.id.trim_start_matches("TURN#").to_string();

        let status_before = case.status;
        case.status = plan.next_status;
        if case.turn_in_flight.as_deref() == Some(turn.id.as_str()) {
            case.turn_in_flight = None;
        }
        for action in &plan.actions {
            match action {
                Action::SendToCustomer { kind, body } => {
                    let outbound = customer_mail(env, &case, *kind, body, &turn.id, &suffix, now)?;
                    timeline.add(
                        "mail_queued",
                        format!(
                            "{} to {} queued for sending",
                            kind.as_str(),
                            outbound.to.join(", ")
                        ),
                    );
                    commit.message_index.push(MessageIndexEntry {
                        message_id: outbound.message_id.clone(),
                        case_id: case_id.clone(),
                        must_be_new: false,
                    });
                    commit
                        .records
                        .push(RecordWrite::Create(Record::Outbound(outbound)));
                }
                Action::DraftForReview { kind, body, reason } => {
                    let answer = match &result {
                        TurnResult::Answered { response } => response.clone(),
                        TurnResult::Failed { .. } => continue,
                    };
                    let draft = Draft {
                        id: format!("DRAFT#{suffix}#{}", kind.as_str()),
                        turn: turn.id.clone(),
                        kind: *kind,
                        to: vec![case.customer.clone()],
                        subject: reply_subject(&case.subject, &case.id.subject_tag()),
                        body: with_signature(env, body),
                        reason: reason.describe().to_string(),
                        answer,
                        status: DraftStatus::PendingReview,
                        created_at: now,
                    };
                    timeline.add(
                        "draft_created",
                        format!(
                            "{} drafted for review: {}",
                            kind.as_str(),
                            reason.describe()
                        ),
                    );
                    commit
                        .records
                        .push(RecordWrite::Create(Record::Draft(draft)));
                }
                Action::Escalate { reason } => {
                    escalate(
                        env,
                        &mut case,
                        &mut commit,
                        &mut timeline,
                        reason,
                        &turn.id,
                        &suffix,
                        now,
                    )?;
                }
                Action::Close { reason } => timeline.add("case_closed", reason.clone()),
                Action::Record { note } => timeline.add("answer_recorded", note.clone()),
            }
        }

        let mut next_work_item = None;
        if !case.pending_mail.is_empty() && case.agents_may_work() && case.turn_in_flight.is_none()
        {
            let work = WorkItem {
                id: timeline.record_key("WORK#"),
                mail_ids: std::mem::take(&mut case.pending_mail),
                created_at: now,
                status: WorkItemStatus::Pending,
            };
            case.turn_in_flight = Some(work.id.replacen("WORK#", "TURN#", 1));
            case.status = CaseStatus::AgentWorking;
            timeline.add(
                "agent_turn_requested",
                format!(
                    "{} mail(s) arrived during the turn; the agent is called again",
                    work.mail_ids.len()
                ),
            );
            next_work_item = Some(work.id.clone());
            commit
                .records
                .push(RecordWrite::Create(Record::WorkItem(work)));
        }

        if case.status != status_before {
            timeline.add(
                "status_changed",
                format!("case {status_before} → {}", case.status),
            );
        }
        turn.status = TurnStatus::Done;
        case.updated_at = now;
        commit.records.push(RecordWrite::ReplaceIfStatus {
            record: Record::Turn(turn),
            expected_status: TurnStatus::Answered.as_str(),
        });
        commit
            .records
            .extend(timeline.into_records().map(RecordWrite::Create));
        commit.case = Some(CaseWrite::Update(case));
        match store.commit(commit).await {
            Ok(()) => return Ok((Some(plan), next_work_item)),
            Err(CommitError::VersionConflict(_)) => continue,
            Err(CommitError::StateMismatch(_)) | Err(CommitError::AlreadyExists(_)) => {
                return Ok((None, None))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!(
        "outcome {case_id}/{turn_key}"
    )))
}

#[allow(clippy::too_many_arguments)]
fn escalate(
    env: StepEnv<'_>,
    case: &mut Case,
    commit: &mut Commit,
    timeline: &mut Timeline,
    reason: &str,
    turn_id: &str,
    suffix: &str,
    now: DateTime<Utc>,
) -> Result<(), PipelineError> {
    case.status = CaseStatus::Escalated;
    case.escalation = Some(Escalation {
        queue: env.config.mail.queue_name.clone(),
        reason: reason.to_string(),
        at: now,
    });
    timeline.add(
        "escalated",
        format!("to queue {}: {reason}", env.config.mail.queue_name),
    );
    let notice = escalation_notice(env, case, reason, turn_id, suffix, now)?;
    commit
        .records
        .push(RecordWrite::Create(Record::Outbound(notice)));
    Ok(())
}

fn with_signature(env: StepEnv<'_>, body: &str) -> String {
    match &env.config.mail.signature {
        Some(signature) => format!("{}\n\n-- \n{}", body.trim_end(), signature),
        None => body.trim_end().to_string(),
    }
}

fn new_message_id(env: StepEnv<'_>, case: &Case) -> String {
    format!(
        "{}.{}@{}",
        case.id.as_str().to_ascii_lowercase(),
        uuid::Uuid::new_v4().simple(),
        env.config.mail.message_id_domain()
    )
}

fn customer_mail(
    env: StepEnv<'_>,
    case: &Case,
    kind: MailKind,
    body: &str,
    turn_id: &str,
    suffix: &str,
    now: DateTime<Utc>,
) -> Result<OutboundMail, PipelineError> {
    let to = vec![case.customer.clone()];
    let subject = reply_subject(&case.subject, &case.id.subject_tag());
    let body = with_signature(env, body);
    let message_id = new_message_id(env, case);
    let skip = case.thread_message_ids.len().saturating_sub(MAX_REFERENCES);
    let references: Vec<String> = case.thread_message_ids[skip..].to_vec();
    let raw = compose(&Composition {
        from_address: &env.config.mail.from_address,
        from_name: env.config.mail.from_name.as_deref(),
        to: &to,
        subject: &subject,
        body: &body,
        message_id: &message_id,
        in_reply_to: case.last_inbound_message_id.as_deref(),
        references: &references,
        date: now,
    })?;
    Ok(OutboundMail {
        id: format!("OUT#{suffix}#{}", kind.as_str()),
        kind,
        turn: Some(turn_id.to_string()),
        from: env.config.mail.from_address.clone(),
        to,
        subject,
        body,
        message_id,
        in_reply_to: case.last_inbound_message_id.clone(),
        references,
        status: OutboundStatus::Pending,
        provider_message_id: None,
        error: None,
        raw_mime: Some(String::from_utf8_lossy(&raw).into_owned()),
        created_at: now,
        sent_at: None,
    })
}

fn escalation_notice(
    env: StepEnv<'_>,
    case: &Case,
    reason: &str,
    turn_id: &str,
    suffix: &str,
    now: DateTime<Utc>,
) -> Result<OutboundMail, PipelineError> {
    let to = vec![env.config.mail.queue_address.clone()];
    let subject = format!("[escalated] {} {}", case.subject, case.id.subject_tag());
    let body = format!(
        "Case {} from {} was escalated to the {} queue.\n\nReason: {reason}\nIntent: {}\n",
        case.id,
        case.customer,
        env.config.mail.queue_name,
        case.intent.as_deref().unwrap_or("none"),
    );
    let message_id = new_message_id(env, case);
    let raw = compose(&Composition {
        from_address: &env.config.mail.from_address,
        from_name: env.config.mail.from_name.as_deref(),
        to: &to,
        subject: &subject,
        body: &body,
        message_id: &message_id,
        in_reply_to: None,
        references: &[],
        date: now,
    })?;
    // Several escalations may come from one turn (a failed send escalates too).
    let attempt = if case.escalation.is_some() {
        uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
    } else {
        String::new()
    };
    Ok(OutboundMail {
        id: format!(
            "OUT#{suffix}#{}{attempt}",
            MailKind::EscalationNotice.as_str()
        ),
        kind: MailKind::EscalationNotice,
        turn: Some(turn_id.to_string()),
        from: env.config.mail.from_address.clone(),
        to,
        subject,
        body,
        message_id,
        in_reply_to: None,
        references: Vec::new(),
        status: OutboundStatus::Pending,
        provider_message_id: None,
        error: None,
        raw_mime: Some(String::from_utf8_lossy(&raw).into_owned()),
        created_at: now,
        sent_at: None,
    })
}

/// Sends one pending outbound mail exactly once. Returns (id, sent?) or None
/// when another worker holds it.
async fn send_one<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    outbound: OutboundMail,
) -> Result<Option<(String, bool)>, PipelineError> {
    let mut claimed = outbound.clone();
    claimed.status = OutboundStatus::Sending;
    let mut claim = Commit::new(case_id.clone());
    claim.records.push(RecordWrite::ReplaceIfStatus {
        record: Record::Outbound(claimed.clone()),
        expected_status: OutboundStatus::Pending.as_str(),
    });
    match store.commit(claim).await {
        Ok(()) => {}
        Err(CommitError::StateMismatch(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mail = OutgoingMail {
        from: outbound.from.clone(),
        to: outbound.to.clone(),
        message_id: outbound.message_id.clone(),
        raw: outbound.raw_mime.clone().unwrap_or_default().into_bytes(),
    };
    match mailer.send(&mail).await {
        Ok(receipt) => {
            let mut sent = claimed;
            sent.status = OutboundStatus::Sent;
            sent.provider_message_id = Some(receipt.provider_message_id.clone());
            sent.sent_at = Some(env.clock.now());
            finish_send(env, store, case_id, sent, None).await?;
            tracing::info!(case = %case_id, outbound = %outbound.id, kind = outbound.kind.as_str(), "mail sent");
            Ok(Some((outbound.id, true)))
        }
        Err(e) if e.is_retryable() => {
            // Hand it back so the retried event sends it.
            let mut release = Commit::new(case_id.clone());
            release.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Outbound(outbound),
                expected_status: OutboundStatus::Sending.as_str(),
            });
            store.commit(release).await?;
            Err(PipelineError::Mail(e))
        }
        Err(e) => {
            tracing::error!(case = %case_id, outbound = %outbound.id, error = %e, "mail refused permanently");
            let mut failed = claimed;
            failed.status = OutboundStatus::Failed;
            failed.error = Some(e.to_string());
            finish_send(env, store, case_id, failed, Some(e)).await?;
            Ok(Some((outbound.id, false)))
        }
    }
}

/// Records a send's outcome on the mail and the case, retrying on conflicts.
async fn finish_send<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    outbound: OutboundMail,
    failure: Option<MailError>,
) -> Result<(), PipelineError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut case = load_case(store, case_id).await?;
        let now = env.clock.now();
        let mut timeline = Timeline::for_commit(&case, now);
        let mut commit = Commit::new(case_id.clone());
        match &failure {
            None => {
                timeline.add(
                    "mail_sent",
                    format!(
                        "{} sent to {}",
                        outbound.kind.as_str(),
                        outbound.to.join(", ")
                    ),
                );
                if outbound.kind != MailKind::EscalationNotice
                    && !case.thread_message_ids.contains(&outbound.message_id)
                {
                    case.thread_message_ids.push(outbound.message_id.clone());
                }
                if let Some(provider_id) = &outbound.provider_message_id {
                    commit.message_index.push(MessageIndexEntry {
                        message_id: ses_message_key(provider_id),
                        case_id: case_id.clone(),
                        must_be_new: false,
                    });
                }
            }
            Some(error) => {
                timeline.add(
                    "mail_failed",
                    format!(
                        "{} to {} could not be sent: {error}",
                        outbound.kind.as_str(),
                        outbound.to.join(", ")
                    ),
                );
                if outbound.kind != MailKind::EscalationNotice && case.status != CaseStatus::Closed
                {
                    let suffix = outbound
                        .turn
                        .as_deref()
                        .unwrap_or("TURN#manual")
                        .trim_start_matches("TURN#")
                        .to_string();
                    let turn_id = outbound.turn.clone().unwrap_or_default();
                    escalate(
                        env,
                        &mut case,
                        &mut commit,
                        &mut timeline,
                        &format!("mail to the customer failed: {error}"),
                        &turn_id,
                        &suffix,
                        now,
                    )?;
                }
            }
        }
        case.updated_at = now;
        commit.records.push(RecordWrite::ReplaceIfStatus {
            record: Record::Outbound(outbound.clone()),
            expected_status: OutboundStatus::Sending.as_str(),
        });
        commit
            .records
            .extend(timeline.into_records().map(RecordWrite::Create));
        commit.case = Some(CaseWrite::Update(case));
        match store.commit(commit).await {
            Ok(()) => return Ok(()),
            Err(CommitError::VersionConflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!(
        "outbound {case_id}/{}",
        outbound.id
    )))
}
