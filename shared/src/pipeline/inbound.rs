//! Inbound step: one raw mail → stored on its case (or recorded as rejected),
//! deduplicated, and — when it is customer mail for an agent — a work item.

use chrono::{DateTime, Utc};

use super::{PipelineError, StepEnv, Timeline, MAX_CONFLICT_RETRIES};
use crate::ids::CaseId;
use crate::inbound::{is_thanks_only, link_candidates, parse_mail, screen, verdict_notes, ParsedMail, Verdicts};
use crate::intent::{Classification, IntentClassifier, OutOfScopeAction, OUT_OF_SCOPE};
use crate::model::{
    AttachmentMeta, Case, CaseStatus, Direction, Disposition, Escalation, MailRecord, Record, RejectedMail, Resolution, ResolutionKind,
    WorkItem, WorkItemStatus,
};
use crate::store::{CaseWrite, Commit, CommitError, MessageIndexEntry, RecordWrite, Store};

use super::outcome::escalation_notice;

/// One delivery of one raw mail.
#[derive(Debug, Clone)]
pub struct InboundDelivery<'a> {
    pub raw: &'a [u8],
    /// The provider's id for this delivery (the SES message id); dedupes redeliveries.
    pub delivery_id: String,
    pub raw_location: Option<String>,
    pub verdicts: Verdicts,
    /// Where each attachment was copied for agents, by attachment index (may be empty).
    pub attachment_locations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    Stored {
        case_id: CaseId,
        mail_id: String,
        new_case: bool,
        disposition: Disposition,
        /// The work item written for the agent, if any.
        work_item: Option<String>,
    },
    /// Already stored by an earlier delivery; nothing written.
    Duplicate { message_id: String },
    /// Tied to no case; kept as a rejected mail with the reason.
    Rejected { reason: String },
}

/// How a mail was tied to its case.
#[derive(Debug, Clone, PartialEq)]
enum Link {
    Header(Case),
    SubjectReference(Case),
    PlusAddress(Case),
    /// No case; `note` says why a reference found was not accepted.
    None {
        note: Option<String>,
    },
}

pub async fn ingest<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    classifier: &dyn IntentClassifier,
    delivery: InboundDelivery<'_>,
) -> Result<IngestOutcome, PipelineError> {
    let now = env.clock.now();
    let parsed = match parse_mail(delivery.raw, env.config.inbound.max_mail_bytes) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(delivery = %delivery.delivery_id, reason = %e, "inbound mail rejected");
            return reject(store, &delivery, None, e.to_string(), now).await;
        }
    };
    let delivery_key = format!("delivery:{}", delivery.delivery_id);
    for key in [parsed.message_id.as_str(), delivery_key.as_str()] {
        if store.case_for_message_id(key).await?.is_some() {
            return Ok(IngestOutcome::Duplicate {
                message_id: parsed.message_id.clone(),
            });
        }
    }
    let disposition = screen(&parsed, &delivery.verdicts, env.config);

    for _ in 0..MAX_CONFLICT_RETRIES {
        let link = find_case(store, env, &parsed).await?;
        let (commit, outcome) = match link {
            Link::Header(case) => existing_case_commit(env, case, &parsed, &delivery, &disposition, "In-Reply-To/References", now),
            Link::SubjectReference(case) => existing_case_commit(env, case, &parsed, &delivery, &disposition, "subject reference", now),
            Link::PlusAddress(case) => existing_case_commit(env, case, &parsed, &delivery, &disposition, "plus-address", now),
            Link::None { note } => {
                if let Disposition::Ignored(reason) | Disposition::Quarantined(reason) = &disposition {
                    return reject(
                        store,
                        &delivery,
                        Some(&parsed),
                        format!("links to no case and is not customer mail: {reason}"),
                        now,
                    )
                    .await;
                }
                new_case_commit(
                    env,
                    classifier.classify(&parsed.subject, &parsed.new_text).await,
                    &parsed,
                    &delivery,
                    note,
                    now,
                )
            }
        };
        match store.commit(commit).await {
            Ok(()) => {
                if let IngestOutcome::Stored {
                    case_id,
                    work_item,
                    disposition,
                    ..
                } = &outcome
                {
                    tracing::info!(case = %case_id, work_item = ?work_item, disposition = ?disposition, "inbound mail stored");
                }
                return Ok(outcome);
            }
            Err(CommitError::VersionConflict(_)) => continue,
            Err(CommitError::AlreadyExists(what)) if what.starts_with("message ") => {
                return Ok(IngestOutcome::Duplicate {
                    message_id: parsed.message_id.clone(),
                })
            }
            // A freshly generated case id collided: try again with a new one.
            Err(CommitError::AlreadyExists(what)) if what.starts_with("case ") => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!("inbound mail {}", parsed.message_id)))
}

async fn reject<S: Store>(
    store: &S,
    delivery: &InboundDelivery<'_>,
    parsed: Option<&ParsedMail>,
    reason: String,
    now: DateTime<Utc>,
) -> Result<IngestOutcome, PipelineError> {
    store
        .record_rejected(RejectedMail {
            key: delivery.delivery_id.clone(),
            received_at: now,
            reason: reason.clone(),
            from: parsed.and_then(|p| p.from.clone()),
            subject: parsed.map(|p| p.subject.clone()),
            message_id: parsed.map(|p| p.message_id.clone()),
            raw_location: delivery.raw_location.clone(),
            size: delivery.raw.len(),
        })
        .await?;
    Ok(IngestOutcome::Rejected { reason })
}

async fn find_case<S: Store>(store: &S, env: StepEnv<'_>, mail: &ParsedMail) -> Result<Link, PipelineError> {
    let candidates = link_candidates(mail, env.config);
    for key in &candidates.message_ids {
        if let Some(case_id) = store.case_for_message_id(key).await? {
            if let Some(case) = store.get_case(&case_id).await? {
                if let Some(note) = closed_too_long(env, &case) {
                    return Ok(Link::None { note: Some(note) });
                }
                return Ok(Link::Header(case));
            }
        }
    }
    // A reference in the subject or address is easy to forge: only participants may use it.
    let sender = mail.from.as_deref().unwrap_or("");
    let mut note = None;
    for (candidate, via_plus) in [(candidates.subject, false), (candidates.plus_address, true)] {
        let Some(case_id) = candidate else { continue };
        let Some(case) = store.get_case(&case_id).await? else {
            note = Some(format!("the mail names case {case_id}, which does not exist"));
            continue;
        };
        if let Some(closed) = closed_too_long(env, &case) {
            note = Some(closed);
            continue;
        }
        if case.is_participant(sender) {
            return Ok(if via_plus {
                Link::PlusAddress(case)
            } else {
                Link::SubjectReference(case)
            });
        }
        note = Some(format!("the mail names case {case_id} but {sender} is not a participant of it"));
    }
    Ok(Link::None { note })
}

/// A case closed longer ago than the reopen window is not reopened: the mail opens a new case.
fn closed_too_long(env: StepEnv<'_>, case: &Case) -> Option<String> {
    let closed_at = case.closed_at.filter(|_| case.status == CaseStatus::Closed)?;
    let window = chrono::Duration::days(i64::from(env.config.safety.reopen_window_days));
    (env.clock.now() - closed_at > window).then(|| {
        format!(
            "the mail refers to case {}, closed more than {} days ago; a new case is opened",
            case.id, env.config.safety.reopen_window_days
        )
    })
}

fn mail_record(
    id: String,
    parsed: &ParsedMail,
    delivery: &InboundDelivery<'_>,
    disposition: &Disposition,
    now: DateTime<Utc>,
) -> MailRecord {
    MailRecord {
        id,
        direction: Direction::Inbound,
        message_id: parsed.message_id.clone(),
        from: parsed.from.clone().unwrap_or_default(),
        from_name: parsed.from_name.clone(),
        to: parsed.to.clone(),
        cc: parsed.cc.clone(),
        subject: parsed.subject.clone(),
        in_reply_to: parsed.in_reply_to.first().cloned(),
        references: parsed.references.clone(),
        body_text: parsed.body_text.clone(),
        new_text: parsed.new_text.clone(),
        attachments: parsed
            .attachments
            .iter()
            .enumerate()
            .map(|(index, a)| AttachmentMeta {
                location: delivery.attachment_locations.get(index).cloned(),
                ..a.clone()
            })
            .collect(),
        disposition: disposition.clone(),
        raw_location: delivery.raw_location.clone(),
        provider_message_id: Some(delivery.delivery_id.clone()),
        received_at: now,
    }
}

/// The index entries for a mail, once its case id is known.
fn index_entries_for<'a>(parsed: &'a ParsedMail, delivery: &'a InboundDelivery<'_>) -> impl Fn(&CaseId) -> Vec<MessageIndexEntry> + 'a {
    move |case_id| index_entries(case_id, parsed, delivery)
}

fn index_entries(case_id: &CaseId, parsed: &ParsedMail, delivery: &InboundDelivery<'_>) -> Vec<MessageIndexEntry> {
    vec![
        MessageIndexEntry {
            message_id: parsed.message_id.clone(),
            case_id: case_id.clone(),
            must_be_new: true,
        },
        MessageIndexEntry {
            message_id: format!("delivery:{}", delivery.delivery_id),
            case_id: case_id.clone(),
            must_be_new: true,
        },
    ]
}

/// The sender and everyone else on To/Cc (but casebridge itself) may write to the case.
fn add_participants(env: StepEnv<'_>, case: &mut Case, parsed: &ParsedMail) {
    for address in parsed.from.iter().chain(parsed.recipients()) {
        if !env.config.mail.is_own_address(address) {
            case.add_participant(address);
        }
    }
}

/// Verdict failures the policy lets through are noted, not hidden.
fn note_verdicts(env: StepEnv<'_>, delivery: &InboundDelivery<'_>, timeline: &mut Timeline) {
    for note in verdict_notes(&delivery.verdicts, env.config) {
        tracing::warn!(delivery = %delivery.delivery_id, verdict = %note, "verdict failure let through by policy");
        timeline.add("verdict_noted", note);
    }
}

/// Adds accepted customer mail to the case's conversation and, unless a turn
/// is already in flight, opens the next turn.
fn admit_customer_mail(env: StepEnv<'_>, case: &mut Case, parsed: &ParsedMail, mail_id: &str, timeline: &mut Timeline) -> Option<WorkItem> {
    add_participants(env, case, parsed);
    if !case.thread_message_ids.contains(&parsed.message_id) {
        case.thread_message_ids.push(parsed.message_id.clone());
    }
    case.last_inbound_message_id = Some(parsed.message_id.clone());
    if case.follow_up.take().is_some() {
        timeline.add("follow_up_cancelled", "the customer wrote; no more reminders");
    }
    if case.status == CaseStatus::Resolved {
        let close_on_thanks = env
            .config
            .workflow(case.workflow_name.as_deref())
            .follow_up
            .as_ref()
            .is_some_and(|f| f.close_on_thanks);
        if close_on_thanks && is_thanks_only(&parsed.new_text) {
            case.status = CaseStatus::Closed;
            case.closed_at = Some(timeline.at);
            case.resolution = Some(Resolution {
                kind: ResolutionKind::Confirmed,
                at: timeline.at,
            });
            timeline.add("case_closed", "the customer confirmed the resolution with a thank-you");
            timeline.add("status_changed", "case resolved → closed");
            return None;
        }
    }
    case.pending_mail.push(mail_id.to_string());

    if case.status == CaseStatus::Closed {
        case.status = CaseStatus::AgentWorking;
        case.closed_at = None;
        case.reopened += 1;
        timeline.add("case_reopened", "the customer wrote again after the case was closed");
    }
    if case.status == CaseStatus::Escalated {
        timeline.add(
            "held_for_representative",
            "mail added; a representative holds the case, so no agent is called",
        );
        return None;
    }
    if let Some(turn) = &case.turn_in_flight {
        timeline.add(
            "queued_for_next_turn",
            format!("turn {turn} is in flight; this mail goes to the agent in the next turn"),
        );
        return None;
    }
    let work_id = timeline.record_key("WORK#");
    let turn_id = work_id.replacen("WORK#", "TURN#", 1);
    let item = WorkItem {
        id: work_id,
        mail_ids: std::mem::take(&mut case.pending_mail),
        created_at: timeline.at,
        status: WorkItemStatus::Pending,
    };
    case.turn_in_flight = Some(turn_id);
    case.status = CaseStatus::AgentWorking;
    timeline.add(
        "agent_turn_requested",
        format!(
            "agent {} will be called with {} new mail(s)",
            case.agent.as_deref().unwrap_or("?"),
            item.mail_ids.len()
        ),
    );
    Some(item)
}

fn existing_case_commit(
    env: StepEnv<'_>,
    mut case: Case,
    parsed: &ParsedMail,
    delivery: &InboundDelivery<'_>,
    disposition: &Disposition,
    linked_by: &str,
    now: DateTime<Utc>,
) -> (Commit, IngestOutcome) {
    let mut timeline = Timeline::for_commit(&case, now);
    let mail_id = timeline.record_key("MSG#");
    timeline.add(
        "mail_received",
        format!(
            "mail from {} linked by {linked_by}",
            parsed.from.as_deref().unwrap_or("unknown sender")
        ),
    );
    note_verdicts(env, delivery, &mut timeline);
    let work_item = match disposition {
        Disposition::Accepted => {
            if case.agent.is_none() && case.status != CaseStatus::Escalated {
                timeline.add("no_agent", "the case has no agent; it stays with representatives");
                None
            } else {
                admit_customer_mail(env, &mut case, parsed, &mail_id, &mut timeline)
            }
        }
        Disposition::Ignored(reason) => {
            timeline.add("mail_ignored", format!("not answered: {reason}"));
            None
        }
        Disposition::Quarantined(reason) => {
            timeline.add("mail_quarantined", format!("quarantined: {reason}"));
            None
        }
    };
    case.updated_at = now;
    stored(
        CaseWrite::Update(case),
        mail_record(mail_id, parsed, delivery, disposition, now),
        work_item,
        timeline,
        index_entries_for(parsed, delivery),
    )
}

fn new_case_commit(
    env: StepEnv<'_>,
    classification: Classification,
    parsed: &ParsedMail,
    delivery: &InboundDelivery<'_>,
    link_note: Option<String>,
    now: DateTime<Utc>,
) -> (Commit, IngestOutcome) {
    let customer = parsed.from.clone().unwrap_or_default();
    let threshold = env.config.classifier.routing_threshold();
    let best = classification.best().cloned();
    let intent = best.as_ref().map(|b| b.intent.clone());
    // Out-of-scope is never an intent of the configuration, so it has no agent.
    let agent = best
        .as_ref()
        .filter(|b| b.confidence >= threshold)
        .and_then(|b| env.config.intent(&b.intent))
        .and_then(|i| i.agent.clone())
        .filter(|_| env.config.inbound.create_cases);
    // Recorded and not answered only when sure: below the threshold a
    // real request might be lost unseen, so the mail is held instead.
    let record_only = classification.is_out_of_scope()
        && env.config.classifier.out_of_scope.action == OutOfScopeAction::Record
        && best.as_ref().is_some_and(|b| b.confidence >= threshold);

    let workflow_name = intent
        .as_deref()
        .and_then(|i| env.config.intent(i))
        .and_then(|i| i.workflow.clone());
    let mut case = Case {
        id: CaseId::generate(&env.config.mail.case_prefix),
        version: 0,
        status: CaseStatus::AgentWorking,
        workflow: env.config.workflow(workflow_name.as_deref()).mode,
        subject: parsed.subject.clone(),
        customer: customer.clone(),
        customer_name: parsed.from_name.clone(),
        conversation_id: uuid::Uuid::new_v4().to_string(),
        intent: intent.clone(),
        intent_confidence: best.as_ref().map(|b| b.confidence),
        intent_scores: classification.case_scores(),
        agent: agent.clone(),
        participants: Vec::new(),
        thread_message_ids: Vec::new(),
        last_inbound_message_id: None,
        turn_in_flight: None,
        pending_mail: Vec::new(),
        escalation: None,
        workflow_name: workflow_name.clone(),
        follow_up: None,
        resolution: None,
        closed_at: None,
        reopened: 0,
        created_at: now,
        updated_at: now,
    };
    let mut timeline = Timeline::for_commit(&case, now);
    let mail_id = timeline.record_key("MSG#");
    timeline.add("case_opened", format!("new case from {customer}"));
    if let Some(note) = link_note {
        timeline.add("not_linked", note);
    }
    timeline.add("mail_received", format!("mail from {customer}"));
    note_verdicts(env, delivery, &mut timeline);
    let scores = classification
        .ranked
        .iter()
        .take(3)
        .map(|s| format!("{} {:.2}", s.intent, s.confidence))
        .collect::<Vec<_>>()
        .join(", ");
    timeline.add(
        "intent_classified",
        format!(
            "{} by {} (scores: {})",
            intent.as_deref().unwrap_or("no intent"),
            classification.method,
            if scores.is_empty() { "none" } else { &scores }
        ),
    );
    if let (Some(second), Some(first)) = (&classification.second, &intent) {
        timeline.add(
            "second_intent",
            format!(
                "the mail also asks for {} (confidence {:.2}); it is routed by {first}, the agent sees both",
                second.intent, second.confidence
            ),
        );
    }

    let mut notice = None;
    let work_item = match &agent {
        Some(_) => admit_customer_mail(env, &mut case, parsed, &mail_id, &mut timeline),
        None if record_only => {
            let confidence = best.as_ref().map_or(0.0, |b| b.confidence);
            add_participants(env, &mut case, parsed);
            case.thread_message_ids.push(parsed.message_id.clone());
            case.last_inbound_message_id = Some(parsed.message_id.clone());
            case.status = CaseStatus::Closed;
            case.closed_at = Some(now);
            timeline.add(
                "out_of_scope",
                format!("not a support request (out_of_scope at confidence {confidence:.2}); recorded, not answered"),
            );
            timeline.add(
                "case_closed",
                "closed without an answer or a queue notice ([classifier.out_of_scope] action = record)",
            );
            None
        }
        None => {
            let reason = match &best {
                _ if !env.config.inbound.create_cases => "the mail links to no case and case creation is off".to_string(),
                None => "no intent recognised".to_string(),
                Some(b) if b.intent == OUT_OF_SCOPE => {
                    let reason = format!(
                        "not a support request (out_of_scope at confidence {:.2}): held for a representative",
                        b.confidence
                    );
                    timeline.add("out_of_scope", reason.clone());
                    reason
                }
                Some(b) if b.confidence < threshold => format!(
                    "intent {} at confidence {:.2} is below the threshold {threshold:.2}",
                    b.intent, b.confidence
                ),
                Some(b) => format!("intent {} has no agent", b.intent),
            };
            add_participants(env, &mut case, parsed);
            case.thread_message_ids.push(parsed.message_id.clone());
            case.last_inbound_message_id = Some(parsed.message_id.clone());
            case.status = CaseStatus::Escalated;
            case.escalation = Some(Escalation {
                queue: env.config.mail.queue_name.clone(),
                reason: reason.clone(),
                at: now,
            });
            timeline.add("escalated", format!("to queue {}: {reason}", env.config.mail.queue_name));
            // The outcome function sends it (its stream filter picks up inbound notices).
            let suffix = mail_id.trim_start_matches("MSG#");
            notice = match escalation_notice(env, &case, &reason, &mail_id, suffix, now) {
                Ok(notice) => Some(notice),
                Err(e) => {
                    tracing::error!(case = %case.id, error = %e, "queue notice could not be composed");
                    None
                }
            };
            None
        }
    };
    let (mut commit, outcome) = stored(
        CaseWrite::Create(case),
        mail_record(mail_id, parsed, delivery, &Disposition::Accepted, now),
        work_item,
        timeline,
        index_entries_for(parsed, delivery),
    );
    commit.records.extend(notice.map(|n| RecordWrite::Create(Record::Outbound(n))));
    (commit, outcome)
}

/// One commit for one stored mail: the case, the mail, its work item if any,
/// the timeline, and the Message-ID index entries that make it happen once.
fn stored(
    case: CaseWrite,
    mail: MailRecord,
    work_item: Option<WorkItem>,
    timeline: Timeline,
    index: impl Fn(&CaseId) -> Vec<MessageIndexEntry>,
) -> (Commit, IngestOutcome) {
    let case_id = case.case().id.clone();
    let new_case = matches!(case, CaseWrite::Create(_));
    let outcome = IngestOutcome::Stored {
        case_id: case_id.clone(),
        mail_id: mail.id.clone(),
        new_case,
        disposition: mail.disposition.clone(),
        work_item: work_item.as_ref().map(|w| w.id.clone()),
    };
    let mut commit = Commit::new(case_id.clone());
    commit.records.push(RecordWrite::Create(Record::Mail(mail)));
    commit.records.extend(work_item.map(|w| RecordWrite::Create(Record::WorkItem(w))));
    commit.records.extend(timeline.into_records().map(RecordWrite::Create));
    commit.message_index = index(&case_id);
    commit.case = Some(case);
    (commit, outcome)
}
