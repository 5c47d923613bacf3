//! Outcome actions: every row of the decision table in both workflows,
//! threading, exactly-once sending, send faults, follow-up and closure on an
//! injected clock, and the safety valves. Each test runs on the embedded
//! store with the outbox mailer (faults injected in the mailer), and again on
//! the local stack when it is up (DynamoDB on moto, SES v2 on
//! aws-ses-v2-local, faults from a proxy in front of it). Sent mail is read
//! back from the outbox or the SES server.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{Config, FollowUpConfig};
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, DraftStatus, MailKind, OutboundStatus, ResolutionKind};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::pipeline::outcome::{resend, send_draft, DraftSendOutcome};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge_tests::*;
use serde_json::{json, Value};

type Answers = Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>>;

struct Setup {
    h: Harness,
    answers: Answers,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

async fn setup(backend: Backend, mode: &str, tune: impl FnOnce(&mut Config)) -> Setup {
    let (url, answers, calls) = spawn_mapped_agent().await;
    let mut config = config(&url, mode);
    config.mail.reply_to = Some("help@shop.example".into());
    config.workflow.greeting = Some("Hello {name},".into());
    config.workflow.footer = Some("Example Shop · 1 Market St".into());
    tune(&mut config);
    let agents = HttpAgentClient::new(Arc::new(casebridge::secrets::Secrets::env_only())).unwrap();
    Setup {
        h: Harness::new(backend, config, agents).await,
        answers,
        calls,
    }
}

impl Setup {
    async fn case_answering(&self, answer: Value) -> CaseId {
        let case = self.h.new_case().await;
        self.answers.lock().unwrap().insert(case.to_string(), answer);
        case
    }

    fn answer(&self, case: &CaseId, answer: Value) {
        self.answers.lock().unwrap().insert(case.to_string(), answer);
    }

    async fn customer_mails(&self, case: &CaseId) -> Vec<SentMail> {
        let customer = self.h.case(case).await.customer;
        self.h.sent_to(&customer).await
    }
}

fn with_follow_up(close_on_thanks: bool) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.workflow.follow_up = Some(FollowUpConfig {
            reminders: 2,
            interval_hours: 24,
            close_after_hours: 24,
            interval_secs: None,
            close_after_secs: None,
            reminder_text: "Did our answer help?".into(),
            close_on_thanks,
        })
    }
}

/// Independent statement of SPEC §2 for the table test.
fn expected(answer: &str, semi: bool, needs_review: Option<bool>) -> (usize, usize, CaseStatus) {
    let review = semi || needs_review == Some(true);
    match answer {
        "Question" if review => (0, 1, CaseStatus::PendingReview),
        "Question" => (1, 0, CaseStatus::WaitingOnCustomer),
        "Resolved" if review => (0, 1, CaseStatus::PendingReview),
        "Resolved" => (1, 0, CaseStatus::Resolved),
        "UnableToResolve" => (0, 0, CaseStatus::Escalated),
        "NoAction" => (0, 0, CaseStatus::Idle),
        "ResolveCase" => (0, 0, CaseStatus::Closed),
        other => panic!("{other}"),
    }
}

async fn every_row_of_the_table_in_both_workflows(backend: Backend) {
    for mode in ["fully_autonomous", "semi_autonomous"] {
        let mut s = setup(backend.clone(), mode, |_| {}).await;
        for answer in ["Question", "Resolved", "UnableToResolve", "NoAction", "ResolveCase"] {
            for needs_review in [None, Some(false), Some(true)] {
                let mut body = json!({"responseType": answer});
                if matches!(answer, "Question" | "Resolved") {
                    body["message"] = json!("Agent text for the customer.");
                }
                if let Some(flag) = needs_review {
                    body["handlingOptions"] = json!({"needsReview": flag});
                }
                let case = s.case_answering(body.clone()).await;
                s.h.one_turn(&case).await;
                let (mails, drafts, status) = expected(answer, mode == "semi_autonomous", needs_review);
                let row = format!("{mode} {body}");
                assert_eq!(s.customer_mails(&case).await.len(), mails, "mails to the customer: {row}");
                assert_eq!(s.h.drafts(&case).await.len(), drafts, "drafts: {row}");
                let after = s.h.case(&case).await;
                assert_eq!(after.status, status, "status: {row}");
                let notices =
                    s.h.outbound(&case)
                        .await
                        .into_iter()
                        .filter(|o| o.kind == MailKind::EscalationNotice && o.status == OutboundStatus::Sent)
                        .count();
                assert_eq!(notices, usize::from(status == CaseStatus::Escalated), "queue notice: {row}");
            }
        }
    }
}

async fn sent_mail_threads_and_carries_the_templates(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |_| {}).await;
    let case = s
        .case_answering(json!({"responseType": "Question", "message": "Is it <b>order 1234</b>?\n\n- the blue one\n- the red one"}))
        .await;
    s.h.one_turn(&case).await;
    let question = s.h.outbound(&case).await.pop().unwrap();
    let raw = question.raw_mime.clone().unwrap();
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
    let first_inbound = s.h.case(&case).await.thread_message_ids[0].clone();
    assert_eq!(parsed.message_id(), Some(question.message_id.as_str()));
    assert_eq!(parsed.in_reply_to().as_text(), Some(first_inbound.as_str()));
    assert!(parsed
        .references()
        .as_text_list()
        .map(|l| l.iter().any(|r| r == &first_inbound))
        .unwrap_or(parsed.references().as_text() == Some(first_inbound.as_str())));
    assert_eq!(
        parsed.reply_to().and_then(|a| a.first()).and_then(|a| a.address.as_deref()),
        Some("help@shop.example")
    );
    assert_eq!(
        parsed.from().and_then(|a| a.first()).and_then(|a| a.name.as_deref()),
        Some("Example Shop Support")
    );
    assert_eq!(parsed.subject(), Some(format!("Re: Refund please {}", case.subject_tag()).as_str()));
    assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
    let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(text.starts_with("Hello Customer,"), "greeting: {text}");
    assert!(
        text.contains("Example Shop Support\nhttps://shop.example/help") && text.trim_end().ends_with("Example Shop · 1 Market St"),
        "signature and footer: {text}"
    );
    let html = parsed.body_html(0).unwrap().to_string();
    assert!(
        html.contains("&lt;b&gt;order 1234&lt;/b&gt;") && html.contains("<li>the blue one</li>"),
        "html: {html}"
    );
    // What the provider received has the same subject, recipient and text.
    let sent = s.customer_mails(&case).await;
    let at_ses = s.h.backend.sent_raw(&sent[0].provider_id).await;
    let at_ses = mail_parser::MessageParser::default().parse(&at_ses).unwrap();
    assert_eq!(at_ses.subject(), parsed.subject());
    assert!(at_ses.body_text(0).unwrap().contains("the blue one"));
}

async fn a_duplicated_outcome_record_sends_one_mail(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |_| {}).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Done."})).await;
    s.h.agent_step().await;
    let event = s.h.outcome_step().await;
    for _ in 0..2 {
        let replay = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        assert!(s.h.outcome.handle(replay).await.batch_item_failures.is_empty());
    }
    assert_eq!(s.customer_mails(&case).await.len(), 1);
}

async fn provider_throttling_then_success_sends_once(backend: Backend) {
    let (backend, faults) = backend.with_mail_faults().await;
    let mut s = setup(backend, "fully_autonomous", |_| {}).await;
    let case = s.case_answering(json!({"responseType": "Question", "message": "Which one?"})).await;
    let customer = s.h.case(&case).await.customer;
    faults.fail(&customer, SendFault::Throttled, 2);
    s.h.one_turn(&case).await;
    assert!(faults.requests_mentioning(&customer) >= 3, "two throttled tries, then the send");
    assert_eq!(s.customer_mails(&case).await.len(), 1);
    assert_eq!(s.h.outbound(&case).await[0].status, OutboundStatus::Sent);
}

async fn provider_refusal_marks_the_mail_failed_escalates_and_can_be_resent(backend: Backend) {
    let (backend, faults) = backend.with_mail_faults().await;
    let mut s = setup(backend, "fully_autonomous", |_| {}).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    let customer = s.h.case(&case).await.customer;
    faults.fail(&customer, SendFault::Rejected, 1);
    s.h.one_turn(&case).await;
    let resolution =
        s.h.outbound(&case)
            .await
            .into_iter()
            .find(|o| o.kind == MailKind::Resolution)
            .unwrap();
    assert_eq!(resolution.status, OutboundStatus::Failed);
    assert!(resolution.error.as_deref().unwrap_or("").contains("refused"));
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    assert!(after.escalation.unwrap().reason.contains("mail to the customer failed"));
    assert!(
        s.h.outbound(&case)
            .await
            .iter()
            .any(|o| o.kind == MailKind::EscalationNotice && o.status == OutboundStatus::Sent),
        "the queue is told"
    );
    assert!(s.customer_mails(&case).await.is_empty());

    let clock = SystemClock;
    let env = StepEnv::new(&s.h.config, &clock);
    let mailer = s.h.backend.mailer();
    assert!(resend(env, &s.h.store, &mailer, &case, &resolution.id).await.unwrap(), "re-sent");
    assert!(
        !resend(env, &s.h.store, &mailer, &case, &resolution.id).await.unwrap(),
        "a sent mail is not re-sent"
    );
    assert_eq!(s.customer_mails(&case).await.len(), 1);
    let counted = s.h.counted().await;
    let want = [("AiMailsSent", 1), ("CasesOpened", 1), ("Escalations", 1)];
    assert_eq!(
        counted,
        want.into_iter().collect(),
        "the failed send counts no mail, the re-send one"
    );
}

async fn silent_customer_gets_reminders_then_the_case_closes(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", with_follow_up(false)).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    s.h.one_turn(&case).await;
    assert!(s.h.case(&case).await.follow_up.is_some());
    let hours = chrono::Duration::hours;
    assert!(
        s.h.outcome_later(hours(23)).follow_ups().await.unwrap().is_empty(),
        "nothing due before the interval"
    );
    let first = s.h.outcome_later(hours(25)).follow_ups().await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(s.customer_mails(&case).await.len(), 2, "resolution + reminder 1");
    s.h.outcome_later(hours(49)).follow_ups().await.unwrap();
    assert_eq!(s.customer_mails(&case).await.len(), 3, "resolution + 2 reminders");
    assert_eq!(s.h.case(&case).await.status, CaseStatus::Resolved);
    let last = s.h.outcome_later(hours(73)).follow_ups().await.unwrap();
    assert!(last[0].contains("closed"), "{last:?}");
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Closed);
    assert_eq!(after.resolution.unwrap().kind, ResolutionKind::Assumed);
    assert_eq!(s.customer_mails(&case).await.len(), 3, "closing sends nothing");
    let reminder =
        s.h.outbound(&case)
            .await
            .into_iter()
            .find(|o| o.kind == MailKind::Reminder)
            .unwrap();
    assert!(
        reminder.subject.contains(&case.subject_tag()) && reminder.in_reply_to.is_some(),
        "reminders thread"
    );
    assert!(
        s.h.outcome_later(hours(200)).follow_ups().await.unwrap().is_empty(),
        "done follow-ups leave the index"
    );
    let counted = s.h.counted().await;
    // Reminders are templates, not agent-written mail.
    let want = [("AiMailsSent", 1), ("CasesOpened", 1), ("ResolutionsAssumed", 1)];
    assert_eq!(counted, want.into_iter().collect());
}

async fn a_customer_reply_cancels_reminders_and_goes_back_to_the_agent(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", with_follow_up(true)).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    s.h.one_turn(&case).await;
    s.answer(&case, json!({"responseType": "NoAction"}));
    match s.h.customer_writes(&case, "The refund has not arrived yet, can you check?").await {
        IngestOutcome::Stored { work_item: Some(_), .. } => {}
        other => panic!("{other:?}"),
    }
    s.h.one_turn(&case).await;
    assert_eq!(s.calls.load(Ordering::SeqCst), 2, "the reply went back to the agent");
    let done = s.h.outcome_later(chrono::Duration::hours(25)).follow_ups().await.unwrap();
    assert!(done.iter().all(|d| d.ends_with("cancelled")), "{done:?}");
    assert_eq!(s.customer_mails(&case).await.len(), 1, "no reminder after the customer wrote");
}

async fn a_thank_you_closes_the_case_as_confirmed(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", with_follow_up(true)).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    s.h.one_turn(&case).await;
    match s.h.customer_writes(&case, "Thank you so much, that worked!").await {
        IngestOutcome::Stored { work_item: None, .. } => {}
        other => panic!("{other:?}"),
    }
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Closed);
    assert_eq!(after.resolution.unwrap().kind, ResolutionKind::Confirmed);
    assert_eq!(s.calls.load(Ordering::SeqCst), 1, "no agent call for a thank-you");
    let counted = s.h.counted().await;
    let want = [("AiMailsSent", 1), ("CasesOpened", 1), ("ResolutionsConfirmed", 1)];
    assert_eq!(counted, want.into_iter().collect());
}

async fn the_ai_mail_cap_escalates_instead_of_sending(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |c| c.workflow.max_ai_mails_per_day = 1).await;
    let case = s
        .case_answering(json!({"responseType": "Question", "message": "Which order?"}))
        .await;
    s.h.one_turn(&case).await;
    s.h.customer_writes(&case, "Order 1234, I think? Or 1235.").await;
    s.h.one_turn(&case).await;
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    assert!(after.escalation.unwrap().reason.contains("cap 1"));
    assert_eq!(s.customer_mails(&case).await.len(), 1, "the second question is not sent");
}

async fn the_kill_switch_turns_every_send_into_a_draft(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |c| c.safety.kill_switch = true).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    s.h.one_turn(&case).await;
    assert!(s.customer_mails(&case).await.is_empty());
    let drafts = s.h.drafts(&case).await;
    assert_eq!(drafts.len(), 1);
    assert!(drafts[0].reason.contains("kill switch"));
}

async fn shadow_mode_sends_closes_and_escalates_nothing(backend: Backend) {
    let queue = format!("{}@shop.example", unique("queue"));
    let mut s = setup(backend, "fully_autonomous", |c| {
        c.workflow.shadow = true;
        c.mail.queue_address = queue.clone();
    })
    .await;
    for (answer, status) in [
        (
            json!({"responseType": "Resolved", "message": "Refunded."}),
            CaseStatus::PendingReview,
        ),
        (json!({"responseType": "ResolveCase"}), CaseStatus::Idle),
        (json!({"responseType": "UnableToResolve"}), CaseStatus::Idle),
    ] {
        let case = s.case_answering(answer.clone()).await;
        s.h.one_turn(&case).await;
        assert_eq!(s.h.case(&case).await.status, status, "{answer}");
        assert!(s.customer_mails(&case).await.is_empty(), "{answer}");
        assert!(s.h.outbound(&case).await.is_empty(), "{answer}: nothing queued");
    }
    assert!(s.h.sent_to(&queue).await.is_empty(), "no queue notices either");
}

async fn resolve_case_sends_the_configured_closure_notice(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |c| {
        c.workflow.closure_notice = Some("We have closed this case.".into())
    })
    .await;
    let case = s.case_answering(json!({"responseType": "ResolveCase"})).await;
    s.h.one_turn(&case).await;
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Closed);
    assert_eq!(after.resolution.unwrap().kind, ResolutionKind::ClosedByAgent);
    let mails = s.customer_mails(&case).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.contains("We have closed this case."));
}

async fn a_draft_sent_twice_at_once_goes_out_once_with_the_edit(backend: Backend) {
    let mut s = setup(backend, "semi_autonomous", with_follow_up(false)).await;
    let case = s.case_answering(json!({"responseType": "Resolved", "message": "Refunded."})).await;
    s.h.one_turn(&case).await;
    let draft = s.h.drafts(&case).await.pop().unwrap();
    let clock = SystemClock;
    let env = StepEnv::new(&s.h.config, &clock);
    let mailer = s.h.backend.mailer();
    let edit = Some("Hello Customer,\n\nYour refund of $42 is on its way.".to_string());
    let (a, b) = tokio::join!(
        send_draft(env, &s.h.store, &mailer, &case, &draft.id, edit.clone()),
        send_draft(env, &s.h.store, &mailer, &case, &draft.id, edit.clone())
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, DraftSendOutcome::Sent { .. })).count(),
        1,
        "{outcomes:?}"
    );
    let mails = s.customer_mails(&case).await;
    assert_eq!(mails.len(), 1, "one mail for a double click");
    assert!(mails[0].text.contains("$42"), "the edited body was sent");
    assert_eq!(s.h.drafts(&case).await[0].status, DraftStatus::Sent);
    assert!(
        s.h.drafts(&case).await[0].edited,
        "the edit is recorded (the report's share edited)"
    );
    let after = s.h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Resolved);
    assert!(after.follow_up.is_some(), "a sent resolution draft starts the follow-up");
}

async fn a_closed_case_reopens_within_the_window_and_not_after(backend: Backend) {
    let mut s = setup(backend, "fully_autonomous", |c| c.safety.reopen_window_days = 14).await;
    let case = s.case_answering(json!({"responseType": "ResolveCase"})).await;
    s.h.one_turn(&case).await;
    assert_eq!(s.h.case(&case).await.status, CaseStatus::Closed);
    let customer = s.h.case(&case).await.customer;
    let reply = |id: &str| {
        customer_mail(
            &customer,
            &format!("Re: Refund please {}", case.subject_tag()),
            &format!("{id}@c.example"),
            None,
            "It broke again.",
        )
    };
    // Twenty days later: a new case.
    match s
        .h
        .ingest_at(&reply(&unique("late")), &ShiftedClock(chrono::Duration::days(20)))
        .await
    {
        IngestOutcome::Stored {
            case_id, new_case: true, ..
        } => assert_ne!(case_id, case),
        other => panic!("{other:?}"),
    }
    // Within the window: the case reopens and counts it.
    match s.h.ingest(&reply(&unique("soon"))).await {
        IngestOutcome::Stored {
            case_id,
            new_case: false,
            work_item: Some(_),
            ..
        } => assert_eq!(case_id, case),
        other => panic!("{other:?}"),
    }
    let after = s.h.case(&case).await;
    assert_eq!((after.status, after.reopened), (CaseStatus::AgentWorking, 1));
}

on_every_backend!(
    every_row_of_the_table_in_both_workflows,
    sent_mail_threads_and_carries_the_templates,
    a_duplicated_outcome_record_sends_one_mail,
    provider_throttling_then_success_sends_once,
    provider_refusal_marks_the_mail_failed_escalates_and_can_be_resent,
    silent_customer_gets_reminders_then_the_case_closes,
    a_customer_reply_cancels_reminders_and_goes_back_to_the_agent,
    a_thank_you_closes_the_case_as_confirmed,
    the_ai_mail_cap_escalates_instead_of_sending,
    the_kill_switch_turns_every_send_into_a_draft,
    shadow_mode_sends_closes_and_escalates_nothing,
    resolve_case_sends_the_configured_closure_notice,
    a_draft_sent_twice_at_once_goes_out_once_with_the_edit,
    a_closed_case_reopens_within_the_window_and_not_after,
);
