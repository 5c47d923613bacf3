//! End to end through the three Lambda handlers, agents as real HTTP servers
//! on loopback: on the embedded store, the outbox and a raw-mail folder, and
//! again on the local stack when it is up (DynamoDB and S3 on moto, SES v2 on
//! aws-ses-v2-local). Each step is fed the stream records the previous step
//! wrote (the table's DynamoDB stream on the stack). The TTL attribute of
//! rejected mail is DynamoDB's, so that test is stack-only.

use std::sync::atomic::Ordering;

use casebridge::agent_client::HttpAgentClient;
use casebridge::context::timeline_lines;
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, DraftStatus, OutboundMail, OutboundStatus, Record, RecordKind};
use casebridge::store::Store;
use casebridge_agent_invocation::AgentFunction;
use casebridge_inbound_email::InboundFunction;
use casebridge_outcome_actions::OutcomeFunction;
use casebridge_tests::*;
use serde_json::json;

struct Functions {
    inbound: InboundFunction<TestStore, TestRawMail>,
    agent: AgentFunction<TestStore, HttpAgentClient>,
    outcome: OutcomeFunction<TestStore, TestMailer>,
    mail: MailDrop,
}

async fn functions(backend: &Backend, store: &TestStore, agent_url: &str, mode: &str) -> Functions {
    let mail = backend.mail_drop().await;
    let config = config(agent_url, mode);
    Functions {
        inbound: inbound_function(store.clone(), mail.source(), &config),
        agent: AgentFunction {
            store: store.clone(),
            agents: HttpAgentClient::new(std::sync::Arc::new(casebridge::secrets::Secrets::env_only())).unwrap(),
            config: config.clone(),
            clock: clock(),
        },
        outcome: OutcomeFunction {
            store: store.clone(),
            mailer: backend.mailer(),
            config,
            clock: clock(),
        },
        mail,
    }
}

impl Functions {
    /// Delivers raw mail the way SES does (stored raw mail, then the receipt event); returns the case.
    async fn receive(&self, raw: &[u8]) -> (CaseId, String) {
        let ses_id = self.mail.deliver(raw).await;
        let report = self
            .inbound
            .handle(ses_event(&ses_id, "PASS", "PASS"))
            .await
            .expect("inbound handler");
        let case = report.records[0]
            .case_id
            .clone()
            .unwrap_or_else(|| panic!("mail not stored on a case: {:?}", report.records));
        (CaseId::parse(&case).unwrap(), report.records[0].outcome.clone())
    }

    /// Feeds the stream to the agent function, then to the outcome function.
    async fn run_stream_steps(&self, tap: &mut Tap) {
        let event = tap.next_event().await;
        assert!(
            event.records.iter().any(|r| r
                .change
                .new_image
                .get("record_type")
                .is_some_and(|t| *t == serde_dynamo::AttributeValue::S("WorkItem".into()))),
            "the inbound step wrote a work item to the stream"
        );
        let response = self.agent.handle(event, None).await;
        assert!(response.batch_item_failures.is_empty(), "agent step failed: {response:?}");
        let event = tap.next_event().await;
        let response = self.outcome.handle(event).await;
        assert!(response.batch_item_failures.is_empty(), "outcome step failed: {response:?}");
    }
}

async fn outbound_mail(store: &TestStore, case: &CaseId) -> Vec<OutboundMail> {
    store
        .list_records(case, RecordKind::Outbound)
        .await
        .unwrap()
        .into_iter()
        .filter_map(Record::into_outbound)
        .collect()
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    message.header_raw(name).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

async fn refund_scenario_through_the_three_lambda_handlers(backend: Backend) {
    let store = backend.store().await;
    let token = "agent-token-1";
    let api = spawn_api(
        store.clone(),
        backend.mailer(),
        token,
        &config("http://127.0.0.1:9/invoke", "fully_autonomous"),
    )
    .await;
    let agent_url = spawn_refund_agent(api).await;
    let f = functions(&backend, &store, &agent_url, "fully_autonomous").await;
    let mut tap = backend.tap(&store).await;
    let customer = format!("{}@customer.example", unique("ann"));

    // 1. The customer asks for a refund without saying how much.
    let first_id = format!("{}@mail.customer.example", unique("m1"));
    let (case_id, outcome) = f
        .receive(&customer_mail(
            &customer,
            "Refund for order #1234",
            &first_id,
            None,
            "Hello, order #1234 arrived damaged. I would like a refund.",
        ))
        .await;
    assert_eq!(outcome, "new case; agent turn requested");
    let case = store.get_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.intent.as_deref(), Some("refund"));
    f.run_stream_steps(&mut tap).await;

    // 2. The agent's question went out through the provider, threaded to the customer's mail.
    let sent = backend.sent_to(&customer).await;
    assert_eq!(sent.len(), 1, "one question mail: {sent:?}");
    let question = outbound_mail(&store, &case_id)
        .await
        .into_iter()
        .find(|o| o.status == OutboundStatus::Sent)
        .expect("question stored as sent");
    let ses_message_id = question.provider_message_id.clone().expect("provider's id kept");
    assert_eq!(sent[0].provider_id, ses_message_id);
    let raw = question.raw_mime.clone().unwrap().into_bytes();
    assert_eq!(header(&raw, "Message-ID"), Some(format!("<{}>", question.message_id)));
    assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{first_id}>")));
    assert!(header(&raw, "References").unwrap().contains(&first_id));
    assert_eq!(header(&raw, "Auto-Submitted").as_deref(), Some("auto-replied"));
    let subject = header(&raw, "Subject").unwrap();
    assert!(
        subject.starts_with("Re: Refund for order #1234") && subject.contains(&case_id.subject_tag()),
        "{subject}"
    );
    // What the provider received: same subject and recipient, the agent's text.
    let at_ses = mail_parser::MessageParser::default()
        .parse(&backend.sent_raw(&ses_message_id).await)
        .map(|m| (m.subject().map(str::to_string), m.body_text(0).map(|b| b.into_owned())))
        .unwrap();
    assert_eq!(at_ses.0.as_deref(), Some(subject.as_str()));
    assert!(at_ses.1.unwrap_or_default().contains("could you tell us the amount"));
    assert_eq!(
        store.get_case(&case_id).await.unwrap().unwrap().status,
        CaseStatus::WaitingOnCustomer
    );

    // 3. The customer replies to the Message-ID their copy carries: SES
    // rewrote ours on the stack, so there the reply points at SES's id.
    let parent = backend.delivered_message_id(&question);
    let reply_id = format!("{}@mail.customer.example", unique("m2"));
    let body = "It was $42.50.\r\n\r\nOn Tue, 24 Nov 2026 at 09:13, Example Shop Support <support@shop.example> wrote:\r\n> could you tell us the amount\r\n";
    let (reply_case, outcome) = f
        .receive(&customer_mail(&customer, &format!("Re: {subject}"), &reply_id, Some(&parent), body))
        .await;
    assert_eq!(reply_case, case_id, "the reply links to the case by In-Reply-To");
    assert_eq!(outcome, "added to case; agent turn requested");
    f.run_stream_steps(&mut tap).await;

    // 4. The resolution went out and the case is resolved.
    let sent = backend.sent_to(&customer).await;
    assert_eq!(sent.len(), 2, "question and resolution: {sent:?}");
    let resolution = outbound_mail(&store, &case_id)
        .await
        .into_iter()
        .find(|o| o.kind == casebridge::model::MailKind::Resolution)
        .expect("resolution stored");
    assert_eq!(resolution.status, OutboundStatus::Sent);
    assert!(resolution.body.contains("$42.50"));
    let raw = resolution.raw_mime.unwrap().into_bytes();
    assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{reply_id}>")));
    let references = header(&raw, "References").unwrap();
    for id in [&first_id, &question.message_id, &reply_id] {
        assert!(references.contains(id.as_str()), "References {references} lacks {id}");
    }
    let case = store.get_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.status, CaseStatus::Resolved);
    assert!(case.turn_in_flight.is_none() && case.pending_mail.is_empty());
    let timeline = timeline_lines(&store, &case_id).await.unwrap().join("\n");
    for kind in ["case_opened", "intent_classified", "agent_answered", "mail_sent", "mail_received"] {
        assert!(timeline.contains(kind), "timeline lacks {kind}:\n{timeline}");
    }
}

async fn semi_autonomous_workflow_drafts_and_sends_nothing(backend: Backend) {
    let store = backend.store().await;
    let (agent_url, calls) = spawn_counting_agent(json!({"responseType": "Question", "message": "Which order was it?"})).await;
    let f = functions(&backend, &store, &agent_url, "semi_autonomous").await;
    let mut tap = backend.tap(&store).await;
    let customer = format!("{}@customer.example", unique("bo"));
    let (case_id, _) = f
        .receive(&customer_mail(
            &customer,
            "I want a refund",
            &format!("{}@c.example", unique("m")),
            None,
            "Please refund me.",
        ))
        .await;
    f.run_stream_steps(&mut tap).await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        backend.sent_to(&customer).await.is_empty(),
        "nothing sent in the semi-autonomous workflow"
    );
    assert!(outbound_mail(&store, &case_id).await.is_empty(), "no outbound mail record");
    let drafts: Vec<_> = store
        .list_records(&case_id, RecordKind::Draft)
        .await
        .unwrap()
        .into_iter()
        .filter_map(Record::into_draft)
        .collect();
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].status, DraftStatus::PendingReview);
    assert!(drafts[0].body.starts_with("Which order was it?"));
    assert_eq!(drafts[0].to, vec![customer]);
    assert_eq!(store.get_case(&case_id).await.unwrap().unwrap().status, CaseStatus::PendingReview);
}

async fn the_same_mail_delivered_twice_gives_one_agent_call_and_one_mail(backend: Backend) {
    let store = backend.store().await;
    let (agent_url, calls) = spawn_counting_agent(json!({"responseType": "Question", "message": "What is the amount?"})).await;
    let f = functions(&backend, &store, &agent_url, "fully_autonomous").await;
    let mut tap = backend.tap(&store).await;
    let customer = format!("{}@customer.example", unique("cy"));
    let raw = customer_mail(
        &customer,
        "Refund please",
        &format!("{}@c.example", unique("m")),
        None,
        "I want my money back.",
    );

    // The same SES delivery twice, and the same mail delivered again under a new SES id.
    let ses_id = f.mail.deliver(&raw).await;
    let first = f.inbound.handle(ses_event(&ses_id, "PASS", "PASS")).await.unwrap();
    let again = f.inbound.handle(ses_event(&ses_id, "PASS", "PASS")).await.unwrap();
    let (_, redelivered) = {
        let other = f.mail.deliver(&raw).await;
        let report = f.inbound.handle(ses_event(&other, "PASS", "PASS")).await.unwrap();
        (other, report.records[0].outcome.clone())
    };
    assert_eq!(again.records[0].outcome, "duplicate");
    assert_eq!(redelivered, "duplicate");
    let case_id = CaseId::parse(first.records[0].case_id.as_deref().unwrap()).unwrap();

    // Every stream batch is delivered twice, as Lambda may do.
    let work = tap.next_event().await;
    let replay = serde_json::from_value(serde_json::to_value(&work).unwrap()).unwrap();
    assert!(f.agent.handle(work, None).await.batch_item_failures.is_empty());
    assert!(f.agent.handle(replay, None).await.batch_item_failures.is_empty());
    let turns = tap.next_event().await;
    let replay = serde_json::from_value(serde_json::to_value(&turns).unwrap()).unwrap();
    assert!(f.outcome.handle(turns).await.batch_item_failures.is_empty());
    assert!(f.outcome.handle(replay).await.batch_item_failures.is_empty());
    // And whatever the steps wrote next is fed back in too.
    let later = tap.next_event().await;
    let replay: aws_lambda_events::event::dynamodb::Event = serde_json::from_value(serde_json::to_value(&later).unwrap()).unwrap();
    assert!(f.agent.handle(later, None).await.batch_item_failures.is_empty());
    assert!(f.outcome.handle(replay).await.batch_item_failures.is_empty());

    assert_eq!(calls.load(Ordering::SeqCst), 1, "one agent call");
    assert_eq!(backend.sent_to(&customer).await.len(), 1, "one outbound mail");
    assert_eq!(
        store.list_records(&case_id, RecordKind::Mail).await.unwrap().len(),
        1,
        "the mail is stored once"
    );
    assert_eq!(outbound_mail(&store, &case_id).await.len(), 1);
}

/// The store suite on the store the other tests run on: DynamoDB on the
/// stack; on the embedded backend, SQLite behind the stream it writes.
async fn store_conformance(backend: Backend) {
    casebridge::testing::run_store_conformance(&backend.store().await).await;
}

/// The mail suite on the mailer the other tests run on (SES v2, or the
/// outbox behind its fault layer), read back where the tests read mail.
async fn mail_conformance(backend: Backend) {
    let mailer = backend.mailer();
    let backend = &backend;
    casebridge::testing::run_mail_conformance(
        &mailer,
        |receipt| async move { backend.sent_raw(&receipt.provider_message_id).await },
    )
    .await;
}

/// Stack only: the TTL attribute is DynamoDB's.
#[tokio::test(flavor = "multi_thread")]
async fn rejected_mail_records_carry_the_ttl_attribute() {
    let Some(stack) = stack().await else { return };
    let store = stack.table().await;
    let received_at = chrono::Utc::now();
    let rejected = casebridge::model::RejectedMail {
        key: unique("ses"),
        received_at,
        reason: "mail could not be parsed as MIME".into(),
        from: None,
        subject: None,
        message_id: None,
        raw_location: None,
        size: 3,
    };
    store.record_rejected(rejected).await.unwrap();
    let items = store
        .client()
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let item = items
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("REJECTED"))
        .expect("rejected item");
    let expires: i64 = item
        .get(casebridge::store::dynamo::TTL_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("TTL attribute set");
    let days = (expires - received_at.timestamp()) / 86_400;
    assert_eq!(days, casebridge::store::dynamo::REJECTED_RETENTION_DAYS);
}

on_every_backend!(
    refund_scenario_through_the_three_lambda_handlers,
    semi_autonomous_workflow_drafts_and_sends_nothing,
    the_same_mail_delivered_twice_gives_one_agent_call_and_one_mail,
    store_conformance,
    mail_conformance,
);
