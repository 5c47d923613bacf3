//! Inbound step: one raw mail → stored on its case (or recorded as rejected),
//! deduplicated, and — when it is customer mail for an agent — a work item.

use chrono::{DateTime, Utc};

use super::step::{guarded, Attempt};
use super::{common_effect, enter, PipelineError, StepEnv, Timeline};
use crate::ids::CaseId;
use crate::inbound::{is_thanks_only, link_candidates, parse_mail, screen, verdict_notes, ParsedMail, Verdicts};
use crate::intent::{Classification, IntentClassifier, OutOfScopeAction, OUT_OF_SCOPE};
use crate::lifecycle::{CaseEvent, Effect};
use crate::model::{AttachmentMeta, Case, CaseStatus, Direction, Disposition, MailRecord, Record, RejectedMail};
use crate::store::{CaseWrite, Commit, MessageIndexEntry, RecordWrite, Store};

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

    let parsed = &parsed;
    let disposition = &disposition;
    let delivery = &delivery;
    let duplicate = IngestOutcome::Duplicate {
        message_id: parsed.message_id.clone(),
    };
    let outcome = guarded(
        store,
        || format!("inbound mail {}", parsed.message_id),
        move || {
            let duplicate = duplicate.clone();
            async move {
                let link = find_case(store, env, parsed).await?;
                let (commit, outcome) = match link {
                    Link::Header(case) => existing_case_commit(env, case, parsed, delivery, disposition, "In-Reply-To/References", now),
                    Link::SubjectReference(case) => {
                        existing_case_commit(env, case, parsed, delivery, disposition, "subject reference", now)
                    }
                    Link::PlusAddress(case) => existing_case_commit(env, case, parsed, delivery, disposition, "plus-address", now),
                    Link::None { note } => {
                        if let Disposition::Ignored(reason) | Disposition::Quarantined(reason) = disposition {
                            let reason = format!("links to no case and is not customer mail: {reason}");
                            return Ok(Attempt::Done(reject(store, delivery, Some(parsed), reason, now).await?));
                        }
                        let classification = classifier.classify(&parsed.subject, &parsed.new_text).await;
                        new_case_commit(env, classification, parsed, delivery, note, now)
                    }
                };
                // The Message-ID and delivery index entries are create-only: a
                // second delivery of the same mail finds them and stops here.
                Ok(Attempt::write(commit, outcome, duplicate))
            }
        },
    )
    .await?;
    if let IngestOutcome::Stored {
        case_id,
        work_item,
        disposition,
        ..
    } = &outcome
    {
        tracing::info!(case = %case_id, work_item = ?work_item, disposition = ?disposition, "inbound mail stored");
    }
    Ok(outcome)
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

/// The mail joins the case's conversation: its sender and recipients become
/// participants, its Message-ID goes on the thread.
fn join_thread(env: StepEnv<'_>, case: &mut Case, parsed: &ParsedMail) {
    add_participants(env, case, parsed);
    if !case.thread_message_ids.contains(&parsed.message_id) {
        case.thread_message_ids.push(parsed.message_id.clone());
    }
    case.last_inbound_message_id = Some(parsed.message_id.clone());
}

/// Applies an inbound event through the lifecycle reducer and carries out
/// its effects; returns the work item opened, and the queue notice's reason
/// when the case escalates. A refusal is noted on the timeline.
fn admit(
    env: StepEnv<'_>,
    case: &mut Case,
    parsed: &ParsedMail,
    event: CaseEvent<'_>,
    timeline: &mut Timeline,
    commit: &mut Commit,
) -> (Option<String>, Option<String>) {
    let effects = match enter(env, case, timeline, event) {
        Ok(effects) => effects,
        Err(refused) => {
            timeline.add("no_agent", refused.0);
            return (None, None);
        }
    };
    let (mut work, mut notice) = (None, None);
    for effect in effects {
        match effect {
            Effect::JoinThread => join_thread(env, case, parsed),
            Effect::NotifyQueue { reason } => notice = Some(reason),
            Effect::OpenTurn { turn, mails } => {
                work = Some(turn.replacen("TURN#", "WORK#", 1));
                let _ = common_effect(Effect::OpenTurn { turn, mails }, timeline, commit);
            }
            other => {
                let _ = common_effect(other, timeline, commit);
            }
        }
    }
    (work, notice)
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
    let mut commit = Commit::new(case.id.clone());
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
            let event = CaseEvent::MailAccepted {
                mail: &mail_id,
                thanks_only: is_thanks_only(&parsed.new_text),
            };
            admit(env, &mut case, parsed, event, &mut timeline, &mut commit).0
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
        commit,
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
        status: CaseStatus::Idle,
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
    case.set_lifecycle(crate::lifecycle::Lifecycle::new());
    let mut timeline = Timeline::for_commit(&case, now);
    let mut commit = Commit::new(case.id.clone());
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

    let (work_item, notice_reason) = match &agent {
        Some(_) => {
            let event = CaseEvent::MailAccepted {
                mail: &mail_id,
                thanks_only: false,
            };
            admit(env, &mut case, parsed, event, &mut timeline, &mut commit)
        }
        None if record_only => {
            let confidence = best.as_ref().map_or(0.0, |b| b.confidence);
            timeline.add(
                "out_of_scope",
                format!("not a support request (out_of_scope at confidence {confidence:.2}); recorded, not answered"),
            );
            admit(env, &mut case, parsed, CaseEvent::RecordedOnly, &mut timeline, &mut commit)
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
            admit(
                env,
                &mut case,
                parsed,
                CaseEvent::Unrouted { reason: &reason },
                &mut timeline,
                &mut commit,
            )
        }
    };
    // The outcome function sends the queue notice (its stream filter picks up inbound notices).
    if let Some(reason) = notice_reason {
        let suffix = mail_id.trim_start_matches("MSG#");
        match escalation_notice(env, &case, &reason, &mail_id, suffix, now) {
            Ok(notice) => commit.records.push(RecordWrite::Create(Record::Outbound(notice))),
            Err(e) => tracing::error!(case = %case.id, error = %e, "queue notice could not be composed"),
        }
    }
    stored(
        commit,
        CaseWrite::Create(case),
        mail_record(mail_id, parsed, delivery, &Disposition::Accepted, now),
        work_item,
        timeline,
        index_entries_for(parsed, delivery),
    )
}

/// One commit for one stored mail: the case, the mail, its work item if any
/// (already in `commit`), the timeline, and the Message-ID index entries
/// that make it happen once.
fn stored(
    mut commit: Commit,
    case: CaseWrite,
    mail: MailRecord,
    work_item: Option<String>,
    mut timeline: Timeline,
    index: impl Fn(&CaseId) -> Vec<MessageIndexEntry>,
) -> (Commit, IngestOutcome) {
    let case_id = case.case().id.clone();
    let new_case = matches!(case, CaseWrite::Create(_));
    let outcome = IngestOutcome::Stored {
        case_id: case_id.clone(),
        mail_id: mail.id.clone(),
        new_case,
        disposition: mail.disposition.clone(),
        work_item,
    };
    commit.records.insert(0, RecordWrite::Create(Record::Mail(mail)));
    if new_case {
        timeline.count(crate::metrics::Fact::CaseOpened);
    }
    timeline.write_into(&mut commit, case.case());
    commit.message_index = index(&case_id);
    commit.case = Some(case);
    (commit, outcome)
}
