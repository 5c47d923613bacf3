//! Outcome step: carry out a stored agent answer. The plan comes from the
//! decision table; this step only writes what the plan says. Also here,
//! because they send through the same path: sending a reviewed draft,
//! re-sending a failed mail, and the follow-up reminders and closure.
//!
//! Exactly-once mail: the outbound record is created (create-only) together
//! with the state change that calls for it, then claimed `pending → sending`
//! before SES is called, and marked `sent` after. If the function dies
//! between the SES call and the `sent` write, the record stays `sending`: it
//! is never re-sent on its own (a duplicate to a customer is worse than a
//! visible "unknown"), and an operator can check and re-send it.

use chrono::{DateTime, Duration, Utc};

use super::step::{guarded, Attempt};
use super::{common_effect, enter, load_case, load_record, PipelineError, StepEnv, Timeline};
use crate::config::WorkflowConfig;
use crate::decision::{decide, Options, Plan, Situation};
use crate::ids::{ses_message_key, CaseId};
use crate::lifecycle::{CaseEvent, Effect};
use crate::mail::{compose, reply_subject, Composition, MailError, MailSender, OutgoingMail};
use crate::model::{
    Case, Draft, DraftStatus, FollowUp, FollowUpStatus, MailKind, OutboundMail, OutboundStatus, Record, RecordKind, TurnResult, TurnStatus,
};
use crate::store::{CaseWrite, Commit, CommitError, MessageIndexEntry, RecordWrite, Store};

/// References kept on outbound mail; enough for every client to thread.
const MAX_REFERENCES: usize = 20;
/// Sends tried in-process when SES throttles, before the event is retried.
const THROTTLE_ATTEMPTS: u32 = 3;

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

fn workflow_of<'a>(env: StepEnv<'a>, case: &Case) -> &'a WorkflowConfig {
    env.config.workflow(case.workflow_name.as_deref())
}

pub async fn carry_out<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    turn_key: &str,
) -> Result<OutcomeReport, PipelineError> {
    let (plan, next_work_item) = apply_plan(env, store, case_id, turn_key).await?;
    let (sent, failed) = flush_origin(env, store, mailer, case_id, turn_key).await?;
    Ok(OutcomeReport {
        turn: turn_key.to_string(),
        plan,
        sent,
        failed,
        next_work_item,
    })
}

/// Sends every pending mail caused by `origin` (a turn, draft or follow-up
/// key). Returns (sent, failed) ids.
pub async fn flush_origin<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    origin: &str,
) -> Result<(Vec<String>, Vec<String>), PipelineError> {
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    // A permanent failure queues an escalation notice, hence a second pass.
    for _ in 0..3 {
        let pending: Vec<OutboundMail> = store
            .list_records(case_id, RecordKind::Outbound)
            .await?
            .into_iter()
            .filter_map(Record::into_outbound)
            .filter(|o| o.origin.as_deref() == Some(origin) && o.status == OutboundStatus::Pending)
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
    Ok((sent, failed))
}

async fn ai_mails_last_24h<S: Store>(store: &S, case_id: &CaseId, now: DateTime<Utc>) -> Result<u32, PipelineError> {
    let since = now - Duration::hours(24);
    Ok(store
        .list_records(case_id, RecordKind::Outbound)
        .await?
        .into_iter()
        .filter_map(Record::into_outbound)
        .filter(|o| o.kind.is_ai_written() && o.status != OutboundStatus::Failed && o.created_at > since)
        .count() as u32)
}

async fn apply_plan<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    turn_key: &str,
) -> Result<(Option<Plan>, Option<String>), PipelineError> {
    guarded(
        store,
        || format!("outcome {case_id}/{turn_key}"),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let mut turn = load_record(store, case_id, turn_key, Record::into_turn).await?;
            if turn.status != TurnStatus::Answered {
                return Ok(Attempt::Done((None, None)));
            }
            let now = env.clock.now();
            let workflow = workflow_of(env, &case);
            let options = Options {
                shadow: workflow.shadow,
                kill_switch: env.config.safety.kill_switch,
                ai_mails_last_24h: ai_mails_last_24h(store, case_id, now).await?,
                ai_mail_cap: workflow.max_ai_mails_per_day,
                follow_up: workflow.follow_up.is_some(),
                closure_notice: workflow.closure_notice.as_deref(),
            };
            let result = turn.result.clone().unwrap_or(TurnResult::Failed {
                reason: "the turn has no stored result".into(),
            });
            // Kept for the report; the reducer asks decide() the same question.
            let plan = decide(Situation {
                case_status: case.status,
                workflow: case.workflow,
                options,
                result: &result,
            });
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            let suffix = turn.id.trim_start_matches("TURN#").to_string();
            let event = CaseEvent::AnswerRecorded {
                turn: &turn.id,
                result: &result,
                workflow: case.workflow,
                options,
            };
            // An answer is never refused: every (state, result) has a plan.
            let effects = enter(env, &mut case, &mut timeline, event).map_err(|r| PipelineError::Commit(r.0))?;
            let mut next_work_item = None;
            for effect in effects {
                match effect {
                    Effect::Send { kind, body } => {
                        let outbound = customer_mail(env, &case, kind, &body, &turn.id, format!("OUT#{suffix}#{}", kind.as_str()), now)?;
                        timeline.add(
                            "mail_queued",
                            format!("{} to {} queued for sending", kind.as_str(), outbound.to.join(", ")),
                        );
                        commit.message_index.push(MessageIndexEntry {
                            message_id: outbound.message_id.clone(),
                            case_id: case_id.clone(),
                            must_be_new: false,
                        });
                        commit.records.push(RecordWrite::Create(Record::Outbound(outbound)));
                    }
                    Effect::Draft { kind, body, reason } => {
                        let TurnResult::Answered { response } = &result else { continue };
                        let draft = Draft {
                            id: format!("DRAFT#{suffix}#{}", kind.as_str()),
                            turn: turn.id.clone(),
                            kind,
                            to: vec![case.customer.clone()],
                            subject: reply_subject(&case.subject, &case.id.subject_tag()),
                            body: compose_body(env, &case, &body),
                            reason: reason.describe().to_string(),
                            answer: response.clone(),
                            status: DraftStatus::PendingReview,
                            created_at: now,
                            edited: false,
                        };
                        timeline.add(
                            "draft_created",
                            format!("{} drafted for review: {}", kind.as_str(), reason.describe()),
                        );
                        commit.records.push(RecordWrite::Create(Record::Draft(draft)));
                    }
                    Effect::ScheduleFollowUp { id } => schedule_follow_up(env, &case, &mut commit, &mut timeline, id, now),
                    Effect::NotifyQueue { reason } => notify_queue(env, &case, &mut commit, &reason, &turn.id, &suffix, now)?,
                    Effect::OpenTurn { turn, mails } => {
                        next_work_item = Some(turn.replacen("TURN#", "WORK#", 1));
                        let _ = common_effect(Effect::OpenTurn { turn, mails }, &mut timeline, &mut commit);
                    }
                    other => {
                        let _ = common_effect(other, &mut timeline, &mut commit);
                    }
                }
            }
            turn.status = TurnStatus::Done;
            case.updated_at = now;
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Turn(turn),
                expected_status: TurnStatus::Answered.as_str(),
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            // The turn moves answered → done once: a second run finds it done.
            Ok(Attempt::write(commit, (Some(plan), next_work_item), (None, None)))
        },
    )
    .await
}

/// Writes the follow-up record the lifecycle named (the case already points at it).
fn schedule_follow_up(env: StepEnv<'_>, case: &Case, commit: &mut Commit, timeline: &mut Timeline, id: String, now: DateTime<Utc>) {
    let Some(policy) = &workflow_of(env, case).follow_up else { return };
    let due_at = now + policy.interval();
    timeline.add(
        "follow_up_scheduled",
        format!(
            "{} reminder(s) every {} while the customer is silent, then closure",
            policy.reminders,
            policy.describe_interval()
        ),
    );
    let follow_up = FollowUp {
        id,
        reminders_sent: 0,
        status: FollowUpStatus::Active,
        due_at: Some(due_at),
        created_at: now,
    };
    commit.records.push(RecordWrite::Create(Record::FollowUp(follow_up)));
}

/// Queues the notice to the representatives' queue for an escalation the
/// lifecycle decided.
#[allow(clippy::too_many_arguments)]
fn notify_queue(
    env: StepEnv<'_>,
    case: &Case,
    commit: &mut Commit,
    reason: &str,
    origin: &str,
    suffix: &str,
    now: DateTime<Utc>,
) -> Result<(), PipelineError> {
    let notice = escalation_notice(env, case, reason, origin, suffix, now)?;
    commit.records.push(RecordWrite::Create(Record::Outbound(notice)));
    Ok(())
}

/// Greeting, the text, signature and footer of the case's workflow.
fn compose_body(env: StepEnv<'_>, case: &Case, text: &str) -> String {
    let workflow = workflow_of(env, case);
    let name = case
        .customer_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("there");
    let mut body = String::new();
    if let Some(greeting) = &workflow.greeting {
        body.push_str(&greeting.replace("{name}", name));
        body.push_str("\n\n");
    }
    body.push_str(text.trim_end());
    if let Some(signature) = workflow.signature.as_ref().or(env.config.mail.signature.as_ref()) {
        body.push_str("\n\n-- \n");
        body.push_str(signature);
    }
    if let Some(footer) = &workflow.footer {
        body.push_str("\n\n");
        body.push_str(footer);
    }
    body
}

fn new_message_id(env: StepEnv<'_>, case: &Case) -> String {
    format!(
        "{}.{}@{}",
        case.id.as_str().to_ascii_lowercase(),
        uuid::Uuid::new_v4().simple(),
        env.config.mail.message_id_domain()
    )
}

/// An outbound mail in the case's thread; `body` is final text.
fn threaded_mail(
    env: StepEnv<'_>,
    case: &Case,
    kind: MailKind,
    body: String,
    origin: &str,
    id: String,
    now: DateTime<Utc>,
) -> Result<OutboundMail, PipelineError> {
    let to = vec![case.customer.clone()];
    let subject = reply_subject(&case.subject, &case.id.subject_tag());
    let message_id = new_message_id(env, case);
    let skip = case.thread_message_ids.len().saturating_sub(MAX_REFERENCES);
    let references: Vec<String> = case.thread_message_ids[skip..].to_vec();
    let raw = compose(&Composition {
        from_address: &env.config.mail.from_address,
        from_name: env.config.mail.from_name.as_deref(),
        reply_to: env.config.mail.reply_to.as_deref(),
        to: &to,
        subject: &subject,
        body: &body,
        message_id: &message_id,
        in_reply_to: case.last_inbound_message_id.as_deref(),
        references: &references,
        date: now,
    })?;
    Ok(OutboundMail {
        id,
        kind,
        origin: Some(origin.to_string()),
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

fn customer_mail(
    env: StepEnv<'_>,
    case: &Case,
    kind: MailKind,
    text: &str,
    origin: &str,
    id: String,
    now: DateTime<Utc>,
) -> Result<OutboundMail, PipelineError> {
    threaded_mail(env, case, kind, compose_body(env, case, text), origin, id, now)
}

pub(super) fn escalation_notice(
    env: StepEnv<'_>,
    case: &Case,
    reason: &str,
    origin: &str,
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
        reply_to: None,
        to: &to,
        subject: &subject,
        body: &body,
        message_id: &message_id,
        in_reply_to: None,
        references: &[],
        date: now,
    })?;
    // Several escalations may come from one origin (a failed send escalates too).
    let unique = uuid::Uuid::new_v4().simple().to_string();
    Ok(OutboundMail {
        id: format!("OUT#{suffix}#{}-{}", MailKind::EscalationNotice.as_str(), &unique[..8]),
        kind: MailKind::EscalationNotice,
        origin: Some(origin.to_string()),
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
    if !move_outbound(store, case_id, &claimed, OutboundStatus::Pending).await? {
        return Ok(None);
    }
    let mail = OutgoingMail {
        from: outbound.from.clone(),
        to: outbound.to.clone(),
        message_id: outbound.message_id.clone(),
        raw: outbound.raw_mime.clone().unwrap_or_default().into_bytes(),
    };
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match mailer.send(&mail).await {
            Err(MailError::Throttled(reason)) if attempt < THROTTLE_ATTEMPTS => {
                tracing::warn!(case = %case_id, outbound = %outbound.id, attempt, %reason, "SES throttled the send; backing off");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            other => break other,
        }
    };
    match result {
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
            move_outbound(store, case_id, &outbound, OutboundStatus::Sending).await?;
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

/// Writes `outbound` (with its new status) if the stored one is still in
/// status `from`; false when someone else moved it first.
async fn move_outbound<S: Store>(
    store: &S,
    case_id: &CaseId,
    outbound: &OutboundMail,
    from: OutboundStatus,
) -> Result<bool, PipelineError> {
    let mut commit = Commit::new(case_id.clone());
    commit.records.push(RecordWrite::ReplaceIfStatus {
        record: Record::Outbound(outbound.clone()),
        expected_status: from.as_str(),
    });
    match store.commit(commit).await {
        Ok(()) => Ok(true),
        Err(CommitError::StateMismatch(_)) => Ok(false),
        Err(e) => Err(e.into()),
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
    let (outbound, failure) = (&outbound, &failure);
    guarded(
        store,
        || format!("outbound {case_id}/{}", outbound.id),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let now = env.clock.now();
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            match failure {
                None => {
                    timeline.add(
                        "mail_sent",
                        format!("{} sent to {}", outbound.kind.as_str(), outbound.to.join(", ")),
                    );
                    if outbound.kind.is_ai_written() {
                        timeline.count(crate::metrics::Fact::AiMailSent);
                    }
                    if outbound.kind != MailKind::EscalationNotice && !case.thread_message_ids.contains(&outbound.message_id) {
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
                    let origin = outbound.origin.clone().unwrap_or_else(|| outbound.id.clone());
                    let suffix = origin.split_once('#').map(|(_, s)| s.to_string()).unwrap_or_else(|| origin.clone());
                    let reason = error.to_string();
                    let event = CaseEvent::SendFailed {
                        reason: &reason,
                        to_customer: outbound.kind != MailKind::EscalationNotice,
                    };
                    for effect in enter(env, &mut case, &mut timeline, event).map_err(|r| PipelineError::Commit(r.0))? {
                        match effect {
                            Effect::NotifyQueue { reason } => notify_queue(env, &case, &mut commit, &reason, &origin, &suffix, now)?,
                            other => {
                                let _ = common_effect(other, &mut timeline, &mut commit);
                            }
                        }
                    }
                }
            }
            case.updated_at = now;
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Outbound(outbound.clone()),
                expected_status: OutboundStatus::Sending.as_str(),
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            // Only this sender holds the claim (`sending`): losing it is a fault.
            Ok(Attempt::Write {
                commit,
                written: (),
                lost: None,
            })
        },
    )
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub enum DraftSendOutcome {
    /// Sent now (or queued and sent); the outbound mail's id.
    Sent { outbound: String },
    /// The draft was already sent or discarded: nothing sent.
    AlreadyHandled,
}

/// Sends a reviewed draft, optionally with an edited body, exactly once: a
/// double click finds the draft no longer pending.
pub async fn send_draft<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    draft_key: &str,
    edited_body: Option<String>,
) -> Result<DraftSendOutcome, PipelineError> {
    let outbound_id = format!("OUT#draft-{}", draft_key.trim_start_matches("DRAFT#"));
    let (outbound_id_ref, edited_body) = (&outbound_id, &edited_body);
    let queued = guarded(
        store,
        || format!("draft {case_id}/{draft_key}"),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let mut draft = load_record(store, case_id, draft_key, Record::into_draft).await?;
            if draft.status != DraftStatus::PendingReview {
                return Ok(Attempt::Done(false));
            }
            let now = env.clock.now();
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            let edited = edited_body.as_ref().is_some_and(|b| *b != draft.body);
            let body = edited_body.clone().unwrap_or_else(|| draft.body.clone());
            let outbound = threaded_mail(env, &case, draft.kind, body, &draft.id, outbound_id_ref.clone(), now)?;
            timeline.add(
                "draft_sent",
                format!(
                    "{} draft sent by a representative{}",
                    draft.kind.as_str(),
                    if edited { " (edited)" } else { "" }
                ),
            );
            let event = CaseEvent::DraftSent {
                draft: draft_key,
                kind: draft.kind,
            };
            // A closed case takes no mail but its own closure notice.
            let Ok(effects) = enter(env, &mut case, &mut timeline, event) else {
                return Ok(Attempt::Done(false));
            };
            for effect in effects {
                match effect {
                    Effect::ScheduleFollowUp { id } => schedule_follow_up(env, &case, &mut commit, &mut timeline, id, now),
                    other => {
                        let _ = common_effect(other, &mut timeline, &mut commit);
                    }
                }
            }
            timeline.count(if edited {
                crate::metrics::Fact::DraftSentEdited
            } else {
                crate::metrics::Fact::DraftSentUnedited
            });
            draft.status = DraftStatus::Sent;
            draft.edited = edited;
            draft.body = outbound.body.clone();
            case.updated_at = now;
            commit.message_index.push(MessageIndexEntry {
                message_id: outbound.message_id.clone(),
                case_id: case_id.clone(),
                must_be_new: false,
            });
            commit.records.push(RecordWrite::Create(Record::Outbound(outbound)));
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Draft(draft),
                expected_status: "pending_review",
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            // A double click finds the draft no longer pending.
            Ok(Attempt::write(commit, true, false))
        },
    )
    .await?;
    if !queued {
        return Ok(DraftSendOutcome::AlreadyHandled);
    }
    flush_origin(env, store, mailer, case_id, draft_key).await?;
    Ok(DraftSendOutcome::Sent { outbound: outbound_id })
}

/// Puts a failed mail back to pending and sends it again.
pub async fn resend<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    outbound_key: &str,
) -> Result<bool, PipelineError> {
    let mut outbound = load_record(store, case_id, outbound_key, Record::into_outbound).await?;
    if outbound.status != OutboundStatus::Failed {
        return Ok(false);
    }
    outbound.status = OutboundStatus::Pending;
    outbound.error = None;
    if !move_outbound(store, case_id, &outbound, OutboundStatus::Failed).await? {
        return Ok(false);
    }
    Ok(matches!(send_one(env, store, mailer, case_id, outbound).await?, Some((_, true))))
}

/// Follow-ups that are due: send the next reminder, or close the case once
/// the last reminder went unanswered (resolution assumed). Found with an
/// index query. Returns `case/follow-up: what happened` lines.
pub async fn run_follow_ups<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    limit: usize,
) -> Result<Vec<String>, PipelineError> {
    let now = env.clock.now();
    let mut done = Vec::new();
    for due in store.list_due(RecordKind::FollowUp, now, limit).await? {
        if let Some(what) = follow_up_once(env, store, &due.case_id, &due.key, now).await? {
            flush_origin(env, store, mailer, &due.case_id, &due.key).await?;
            done.push(format!("{}/{}: {what}", due.case_id, due.key));
        }
    }
    Ok(done)
}

async fn follow_up_once<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, PipelineError> {
    guarded(
        store,
        || format!("follow-up {case_id}/{key}"),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let Some(mut follow_up) = store.get_record(case_id, key).await?.and_then(Record::into_follow_up) else {
                return Ok(Attempt::Done(None));
            };
            if follow_up.status != FollowUpStatus::Active {
                return Ok(Attempt::Done(None));
            }
            let policy = workflow_of(env, &case).follow_up.clone();
            let reminders = policy.as_ref().map_or(0, |p| p.reminders);
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            let event = CaseEvent::FollowUpDue {
                follow_up: key,
                reminders_sent: follow_up.reminders_sent,
                reminders,
            };
            let effects = enter(env, &mut case, &mut timeline, event).map_err(|r| PipelineError::Commit(r.0))?;
            let mut what = String::new();
            for effect in effects {
                match effect {
                    Effect::Remind { n } => {
                        let Some(policy) = &policy else { continue };
                        follow_up.reminders_sent = n;
                        let wait = if n == policy.reminders {
                            policy.close_after()
                        } else {
                            policy.interval()
                        };
                        follow_up.due_at = Some(now + wait);
                        if !env.config.safety.kill_switch {
                            let reminder_id = format!("OUT#{}#reminder{n}", key.trim_start_matches("FUP#"));
                            let text = policy.reminder_text.replace("{name}", "there");
                            let reminder = customer_mail(env, &case, MailKind::Reminder, &text, key, reminder_id, now)?;
                            timeline.add(
                                "mail_queued",
                                format!("reminder {n} of {} to {} queued for sending", policy.reminders, case.customer),
                            );
                            commit.message_index.push(MessageIndexEntry {
                                message_id: reminder.message_id.clone(),
                                case_id: case_id.clone(),
                                must_be_new: false,
                            });
                            commit.records.push(RecordWrite::Create(Record::Outbound(reminder)));
                        }
                        what = format!("reminder {n} of {}", policy.reminders);
                    }
                    Effect::EndFollowUp { done } => {
                        follow_up.status = if done { FollowUpStatus::Done } else { FollowUpStatus::Cancelled };
                        follow_up.due_at = None;
                        what = if done { "closed, resolution assumed" } else { "cancelled" }.to_string();
                    }
                    other => {
                        let _ = common_effect(other, &mut timeline, &mut commit);
                    }
                }
            }
            case.updated_at = now;
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::FollowUp(follow_up),
                expected_status: "active",
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            Ok(Attempt::write(commit, Some(what), None))
        },
    )
    .await
}
