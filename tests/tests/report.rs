//! The report's figures on a seeded store whose numbers are known: cases
//! written through the Store port with the records the pipeline leaves
//! (outbound mail, drafts, turns, timeline events) and the day counters its
//! commits add, then read back with `load_facts` and aggregated. The figures
//! are asserted on the embedded store; the same seed is checked on every
//! backend (DynamoDB on moto with the local stack), counters and
//! `/metrics/summary` included.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use casebridge::ids::CaseId;
use casebridge::metrics::Fact;
use casebridge::model::*;
use casebridge::protocol::{AgentResponse, ResponseType};
use casebridge::report::{aggregate, load_facts, FailureCounts, Percentiles, Period, Report, ResolutionCounts};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::{CaseWrite, Commit, Count, RecordWrite, Store};
use casebridge::testing::sample_case;
use casebridge_tests::{on_every_backend, Backend};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 10, 9, 0, 0).unwrap()
}

fn period() -> Period {
    Period {
        since: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    }
}

/// One case as the seed describes it; times are minutes after its creation.
struct Seed {
    intent: &'static str,
    agent: &'static str,
    created: DateTime<Utc>,
    resolution: Option<(ResolutionKind, i64)>,
    reopened: u32,
    escalated: bool,
    /// (kind, sent at minute) of mail sent.
    sent: Vec<(MailKind, i64)>,
    /// A mail that failed to send (never a response).
    failed_mail: bool,
    drafts: Vec<(DraftStatus, bool)>,
    failed_turns: Vec<&'static str>,
}

fn seed(intent: &'static str, agent: &'static str) -> Seed {
    Seed {
        intent,
        agent,
        created: t0(),
        resolution: None,
        reopened: 0,
        escalated: false,
        sent: Vec::new(),
        failed_mail: false,
        drafts: Vec::new(),
        failed_turns: Vec::new(),
    }
}

fn outbound(id: String, kind: MailKind, status: OutboundStatus, sent_at: Option<DateTime<Utc>>, created: DateTime<Utc>) -> Record {
    Record::Outbound(OutboundMail {
        id: id.clone(),
        kind,
        origin: Some("TURN#0000000001".into()),
        from: "support@example.com".into(),
        to: vec!["ann@customer.test".into()],
        subject: "Re: refund".into(),
        body: "text".into(),
        message_id: format!("{}@example.com", id.replace('#', ".")),
        in_reply_to: None,
        references: Vec::new(),
        status,
        provider_message_id: None,
        error: None,
        raw_mime: None,
        created_at: created,
        sent_at,
    })
}

async fn write<S: Store>(store: &S, seed: Seed) -> CaseId {
    let id = CaseId::generate("CB");
    let at = |min: i64| seed.created + Duration::minutes(min);
    let mut case = sample_case(&id);
    case.intent = Some(seed.intent.into());
    case.agent = Some(seed.agent.into());
    case.created_at = seed.created;
    case.updated_at = seed.created;
    case.reopened = seed.reopened;
    case.resolution = seed.resolution.map(|(kind, min)| Resolution { kind, at: at(min) });
    let mut records = Vec::new();
    for (n, (kind, min)) in seed.sent.iter().enumerate() {
        records.push(outbound(
            format!("OUT#{n:04}"),
            *kind,
            OutboundStatus::Sent,
            Some(at(*min)),
            at(*min),
        ));
    }
    if seed.failed_mail {
        records.push(outbound(
            "OUT#failed".into(),
            MailKind::Question,
            OutboundStatus::Failed,
            None,
            at(1),
        ));
    }
    for (n, (status, edited)) in seed.drafts.iter().enumerate() {
        records.push(Record::Draft(Draft {
            id: format!("DRAFT#{n:010}#question"),
            turn: "TURN#0000000001".into(),
            kind: MailKind::Question,
            to: vec!["ann@customer.test".into()],
            subject: "Re: refund".into(),
            body: "Which order?".into(),
            reason: "semi-autonomous workflow".into(),
            answer: AgentResponse {
                response_type: ResponseType::Question,
                message: Some("Which order?".into()),
                handling_options: None,
            },
            status: *status,
            created_at: at(2),
            edited: *edited,
        }));
    }
    for (n, reason) in seed.failed_turns.iter().enumerate() {
        records.push(Record::Turn(AgentTurn {
            id: format!("TURN#{:010}", n + 1),
            work_item: format!("WORK#{:010}", n + 1),
            agent: seed.agent.into(),
            mail_ids: Vec::new(),
            status: TurnStatus::Done,
            started_at: at(0),
            attempts: 3,
            result: Some(TurnResult::Failed {
                reason: (*reason).to_string(),
            }),
            finished_at: Some(at(1)),
            due_at: None,
            remote_task: None,
        }));
    }
    if seed.escalated {
        let reason = "agent failed: agent did not answer within 30000 ms (after 3 attempt(s))";
        case.status = CaseStatus::Escalated;
        case.escalation = Some(Escalation {
            queue: "tier-1".into(),
            reason: reason.into(),
            at: at(2),
        });
        records.push(Record::Event(TimelineEvent {
            id: "EVT#0000000001".into(),
            at: at(2),
            kind: "escalated".into(),
            detail: format!("to queue tier-1: {reason}"),
        }));
        // The notice goes to the representatives' queue: not a response to the customer.
        records.push(outbound(
            "OUT#notice".into(),
            MailKind::EscalationNotice,
            OutboundStatus::Sent,
            Some(at(2)),
            at(2),
        ));
    }
    // The day counters the pipeline adds with the changes that made each
    // fact true, on the day it became true.
    let mut facts = vec![(Fact::CaseOpened, 0)];
    if let Some((kind, min)) = seed.resolution {
        facts.push((
            match kind {
                ResolutionKind::Confirmed => Fact::ResolvedConfirmed,
                ResolutionKind::Assumed => Fact::ResolvedAssumed,
                _ => Fact::ClosedByAgent,
            },
            min,
        ));
        if seed.reopened > 0 {
            facts.push((Fact::Reopened, min + 1));
        }
    }
    if seed.escalated {
        facts.push((Fact::Escalated, 2));
    }
    for (kind, min) in &seed.sent {
        if matches!(kind, MailKind::Question | MailKind::Resolution) {
            facts.push((Fact::AiMailSent, *min));
        }
    }
    for (status, edited) in &seed.drafts {
        match (status, edited) {
            (DraftStatus::Sent, true) => facts.push((Fact::DraftSentEdited, 2)),
            (DraftStatus::Sent, false) => facts.push((Fact::DraftSentUnedited, 2)),
            (DraftStatus::Discarded, _) => facts.push((Fact::DraftDiscarded, 2)),
            _ => {}
        }
    }
    facts.extend(seed.failed_turns.iter().map(|_| (Fact::AgentFailed, 1)));
    let mut commit = Commit::new(id.clone());
    commit.counts = facts
        .into_iter()
        .map(|(fact, min)| Count {
            day: at(min).date_naive(),
            intent: seed.intent.into(),
            agent: Some(seed.agent.into()),
            fact,
        })
        .collect();
    commit.case = Some(CaseWrite::Create(case));
    commit.records = records.into_iter().map(RecordWrite::Create).collect();
    store.commit(commit).await.expect("seed commit");
    id
}

/// Five cases in November, one in October (outside the period).
async fn seeded() -> SqliteStore {
    let store = SqliteStore::in_memory().unwrap();
    seed_into(&store).await;
    store
}

async fn seed_into<S: Store>(store: &S) {
    // 1. refund, confirmed: first response 10 min, resolved after 60 min.
    write(
        store,
        Seed {
            resolution: Some((ResolutionKind::Confirmed, 60)),
            sent: vec![(MailKind::Resolution, 10)],
            ..seed("refund", "refunds")
        },
    )
    .await;
    // 2. refund, assumed after two reminders: 30 min, 3 days.
    write(
        store,
        Seed {
            resolution: Some((ResolutionKind::Assumed, 4_320)),
            sent: vec![(MailKind::Resolution, 30), (MailKind::Reminder, 1_440), (MailKind::Reminder, 2_880)],
            ..seed("refund", "refunds")
        },
    )
    .await;
    // 3. refund, confirmed then reopened: 20 min; no time to resolution.
    write(
        store,
        Seed {
            resolution: Some((ResolutionKind::Confirmed, 120)),
            reopened: 1,
            sent: vec![(MailKind::Resolution, 20), (MailKind::Question, 300)],
            failed_mail: true,
            ..seed("refund", "refunds")
        },
    )
    .await;
    // 4. shipping, semi-autonomous: drafts sent edited, sent unedited,
    //    discarded and pending; first response 45 min, confirmed after 5 h.
    write(
        store,
        Seed {
            resolution: Some((ResolutionKind::Confirmed, 300)),
            sent: vec![(MailKind::Question, 45), (MailKind::Resolution, 200)],
            drafts: vec![
                (DraftStatus::Sent, true),
                (DraftStatus::Sent, false),
                (DraftStatus::Discarded, false),
                (DraftStatus::PendingReview, false),
            ],
            ..seed("shipping", "shipper")
        },
    )
    .await;
    // 5. shipping, the agent timed out and the case escalated; an earlier
    //    turn failed with HTTP 503.
    write(
        store,
        Seed {
            escalated: true,
            failed_turns: vec![
                "agent answered HTTP 503 (after 3 attempt(s))",
                "agent did not answer within 30000 ms (after 3 attempt(s))",
            ],
            ..seed("shipping", "shipper")
        },
    )
    .await;
    // 6. October: outside the period.
    write(
        store,
        Seed {
            created: Utc.with_ymd_and_hms(2026, 10, 31, 23, 59, 59).unwrap(),
            resolution: Some((ResolutionKind::Confirmed, 1)),
            sent: vec![(MailKind::Resolution, 1)],
            ..seed("refund", "refunds")
        },
    )
    .await;
}

async fn report(intent: Option<&str>) -> Report {
    let store = seeded().await;
    let p = period();
    let facts = load_facts(&store, p.since, p.until, 1_000).await.unwrap();
    assert_eq!(facts.len(), 5, "the October case is not loaded");
    aggregate(&facts, &p, intent)
}

#[tokio::test]
async fn totals_are_the_seeded_numbers() {
    let report = report(None).await;
    let t = &report.totals;
    assert_eq!(t.cases, 5);
    assert_eq!(
        t.resolutions,
        ResolutionCounts {
            automated: 4,
            confirmed: 2,
            assumed: 1,
            closed_by_agent: 0,
            reopened: 1,
            after_escalation: 0,
        }
    );
    assert_eq!(t.automated_resolution_rate, Some(0.8));
    assert_eq!(t.escalated_cases, 1);
    assert_eq!(t.escalation_rate, Some(0.2));
    assert_eq!(t.escalation_reasons, BTreeMap::from([("agent_failed".to_string(), 1)]));
    assert_eq!((t.drafts.sent_unedited, t.drafts.sent_edited, t.drafts.discarded), (1, 1, 1));
    assert_eq!(t.drafts.edited_share, Some(1.0 / 3.0));
    assert_eq!(t.drafts.unedited_share, Some(1.0 / 3.0));
    // First responses 10, 20, 30, 45 min (case 5 only notified the queue):
    // p50 = 2nd of 4 = 20 min, p90 = 4th = 45 min.
    assert_eq!(
        t.first_response,
        Percentiles {
            count: 4,
            p50_secs: Some(1_200),
            p90_secs: Some(2_700),
        }
    );
    // Resolutions after 60, 300 and 4,320 min (the reopened one does not count):
    // p50 = 2nd of 3 = 300 min, p90 = 3rd = 4,320 min.
    assert_eq!(
        t.time_to_resolution,
        Percentiles {
            count: 3,
            p50_secs: Some(18_000),
            p90_secs: Some(259_200),
        }
    );
    // Questions and resolutions sent: 1 + 1 + 2 + 2; reminders, the failed
    // mail and the escalation notice are not AI mail sent.
    assert_eq!(t.ai_mails_sent, 6);
    assert_eq!(
        t.agent_failures,
        FailureCounts {
            total: 2,
            timeout: 1,
            http_status: 1,
            ..FailureCounts::default()
        }
    );
}

#[tokio::test]
async fn per_intent_and_per_agent() {
    let report = report(None).await;
    let intents: Vec<(&str, u64)> = report.by_intent.iter().map(|g| (g.name.as_str(), g.figures.cases)).collect();
    assert_eq!(intents, [("refund", 3), ("shipping", 2)]);
    let agents: Vec<(&str, u64)> = report.by_agent.iter().map(|g| (g.name.as_str(), g.figures.cases)).collect();
    assert_eq!(agents, [("refunds", 3), ("shipper", 2)]);

    let refund = &report.by_intent[0].figures;
    assert_eq!(refund.automated_resolution_rate, Some(1.0));
    assert_eq!(refund.escalation_rate, Some(0.0));
    assert_eq!(
        (
            refund.resolutions.confirmed,
            refund.resolutions.assumed,
            refund.resolutions.reopened
        ),
        (1, 1, 1)
    );
    assert_eq!(refund.first_response.p50_secs, Some(1_200));
    assert_eq!(refund.first_response.p90_secs, Some(1_800));
    assert_eq!(refund.drafts.edited_share, None, "no reviewed drafts");
    assert_eq!(refund.ai_mails_sent, 4);

    let shipping = &report.by_intent[1].figures;
    assert_eq!(shipping.automated_resolution_rate, Some(0.5));
    assert_eq!(shipping.escalation_rate, Some(0.5));
    assert_eq!(shipping.agent_failures.total, 2);
    assert_eq!(shipping.time_to_resolution.p50_secs, Some(18_000));
    assert_eq!(shipping, &report.by_agent[1].figures, "one agent per intent here");
}

#[tokio::test]
async fn the_intent_filter_keeps_that_intent_only() {
    let all = report(None).await;
    let shipping = report(Some("shipping")).await;
    assert_eq!(shipping.intent.as_deref(), Some("shipping"));
    assert_eq!(shipping.totals, all.by_intent[1].figures);
    assert_eq!(shipping.by_intent.len(), 1);
    assert_eq!(shipping.by_agent.len(), 1);
    let json = serde_json::to_value(&shipping).unwrap();
    assert_eq!(json["totals"]["cases"], 2);
    assert_eq!(json["totals"]["escalation_reasons"]["agent_failed"], 1);
}

/// `GET /metrics/summary` serves the same figures, to representatives only.
#[tokio::test]
async fn the_summary_route_serves_the_same_figures() {
    use axum::body::Body;
    use axum::http::Request;
    use casebridge_http_api::{router, ApiState, RepresentativeAuth};
    use std::sync::Arc;
    use tower::ServiceExt;

    let expected = serde_json::to_value(report(Some("shipping")).await).unwrap();
    let outbox = std::env::temp_dir().join(format!("casebridge-report-{}", uuid::Uuid::new_v4().simple()));
    let app = router(Arc::new(ApiState {
        store: seeded().await,
        mailer: casebridge::mail::outbox::OutboxMailer::new(&outbox).unwrap(),
        config: casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous"),
        secrets: Arc::new(casebridge::secrets::Secrets::env_only()),
        clock: Arc::new(casebridge::pipeline::SystemClock),
        representatives: RepresentativeAuth::StaticToken("rep-token-0123456789".into()),
    }));
    let get = |uri: &str, token: Option<&str>| {
        let mut request = Request::get(uri).header("x-casebridge-representative", "rita");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let app = app.clone();
        let request = request.body(Body::empty()).unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    let uri = "/metrics/summary?since=2026-11-01&until=2026-11-30&intent=shipping";
    let (status, body) = get(uri, Some("rep-token-0123456789")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, expected);
    let (status, body) = get(uri, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = get("/metrics/summary?since=2026-11-01", Some("rep-token-0123456789")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_query")));
    let (status, _) = get("/metrics/summary?since=2026-11-30&until=2026-11-01", Some("rep-token-0123456789")).await;
    assert_eq!(status, 400, "since after until");
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn the_limit_counts_cases_of_the_period_only() {
    let store = seeded().await;
    let p = period();
    // Six cases stored, five in the period: whichever order the ids come in,
    // the October case never takes a place of the limit.
    assert_eq!(load_facts(&store, p.since, p.until, 5).await.unwrap().len(), 5);
    let two = load_facts(&store, p.since, p.until, 2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|f| p.contains(f.created_at)));
}

#[tokio::test]
async fn cost_and_readiness_come_from_the_report_settings() {
    let store = seeded().await;
    let p = period();
    let facts = load_facts(&store, p.since, p.until, 1_000).await.unwrap();
    let settings = casebridge::config::ReportConfig {
        cost_per_inbound_mail_usd: 0.0,
        cost_per_sent_mail_usd: 1.0,
        min_reviewed_drafts: 3,
        min_unedited_share: 0.3,
        max_escalation_rate: 0.6,
    };
    let report = casebridge::report::aggregate_with(&facts, &p, None, &settings);
    let sent: u64 = facts.iter().map(|f| f.mails_sent).sum();
    assert!(sent > 0, "the seeded cases sent mail");
    assert_eq!(report.totals.infra_cost_usd, sent as f64);
    let resolved = report.totals.resolutions.automated + report.totals.resolutions.after_escalation;
    assert_eq!(report.totals.cost_per_resolved_case_usd, Some(sent as f64 / resolved as f64));
    let shipping = report
        .readiness
        .iter()
        .find(|r| r.intent == "shipping")
        .expect("shipping readiness");
    // 3 reviewed drafts, 1 unedited (33%), 1 of 2 cases escalated (50%).
    assert!(shipping.ready, "{shipping:?}");
    let refund = report.readiness.iter().find(|r| r.intent == "refund").expect("refund readiness");
    assert!(!refund.ready && refund.reasons[0].contains("0 reviewed draft(s)"), "{refund:?}");
}

/// The same seed on every backend: the cases read back into the same report
/// (on DynamoDB the records go through its item layout), and the day
/// counters written with the seed's commits sum to the seed's facts — which
/// is what `GET /metrics/summary` answers on DynamoDB.
async fn the_seeded_numbers_hold_on_every_backend(backend: Backend) {
    use casebridge::daily::summarize;
    let store = backend.store().await;
    seed_into(&store).await;
    let p = period();
    let facts = load_facts(&store, p.since, p.until, 1_000).await.unwrap();
    assert_eq!(facts.len(), 5, "the October case is not loaded");
    let here = serde_json::to_value(aggregate(&facts, &p, None)).unwrap();
    assert_eq!(here, serde_json::to_value(report(None).await).unwrap(), "on {}", backend.name());

    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let summary = summarize(&store.daily_counts(day(1), day(30)).await.unwrap(), day(1), day(30), None);
    let counts = &summary.totals.counts;
    let want = [
        // Cases opened in November; the October case opened on the 31st.
        ("CasesOpened", 5),
        // Counters are by the day a fact became true: the October case was
        // resolved a minute after midnight on 1 November, so its confirmed
        // resolution and its resolution mail count here — unlike the case
        // report, which counts the cases created in the period.
        ("ResolutionsConfirmed", 4),
        ("ResolutionsAssumed", 1),
        ("CasesClosedByAgent", 0),
        ("CasesReopened", 1),
        ("Escalations", 1),
        ("DraftsSentUnedited", 1),
        ("DraftsSentEdited", 1),
        ("DraftsDiscarded", 1),
        ("AiMailsSent", 7),
        ("AgentFailures", 2),
    ];
    for (metric, value) in want {
        assert_eq!(
            counts.get(metric).copied(),
            Some(value),
            "{metric} on {}: {counts:?}",
            backend.name()
        );
    }
    let intents: Vec<(&str, u64)> = summary
        .by_intent
        .iter()
        .map(|i| (i.intent.as_str(), i.figures.counts["CasesOpened"]))
        .collect();
    assert_eq!(intents, [("refund", 3), ("shipping", 2)]);
    let shipping = summarize(
        &store.daily_counts(day(1), day(30)).await.unwrap(),
        day(1),
        day(30),
        Some("shipping"),
    );
    assert_eq!(shipping.totals.counts["AgentFailures"], 2);
    assert_eq!(shipping.totals.escalation_rate, Some(0.5));
    // The first days of November hold only the October case's late facts.
    let first = summarize(&store.daily_counts(day(1), day(9)).await.unwrap(), day(1), day(9), None);
    assert_eq!(first.totals.counts["CasesOpened"], 0);
    assert_eq!(first.totals.counts["ResolutionsConfirmed"], 1);

    // The route answers from the cases where listing them is cheap (the
    // embedded store) and from these counters on DynamoDB.
    let (status, body) = summary_route(store, "/metrics/summary?since=2026-11-01&until=2026-11-30").await;
    assert_eq!(status, 200, "{body}");
    if backend.as_stack().is_some() {
        assert_eq!(body["source"], "daily_counters");
        assert_eq!(body, serde_json::to_value(&summary).unwrap());
    } else {
        assert_eq!(body, here);
    }
}

/// `GET uri` on the HTTP API over `store`, as representative rita.
async fn summary_route<S: Store + 'static>(store: S, uri: &str) -> (u16, serde_json::Value) {
    use axum::body::Body;
    use axum::http::Request;
    use casebridge_http_api::{router, ApiState, RepresentativeAuth};
    use std::sync::Arc;
    use tower::ServiceExt;

    let outbox = std::env::temp_dir().join(format!("casebridge-report-{}", uuid::Uuid::new_v4().simple()));
    let app = router(Arc::new(ApiState {
        store,
        mailer: casebridge::mail::outbox::OutboxMailer::new(&outbox).unwrap(),
        config: casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous"),
        secrets: Arc::new(casebridge::secrets::Secrets::env_only()),
        clock: Arc::new(casebridge::pipeline::SystemClock),
        representatives: RepresentativeAuth::StaticToken("rep-token-0123456789".into()),
    }));
    let request = Request::get(uri)
        .header("x-casebridge-representative", "rita")
        .header("authorization", "Bearer rep-token-0123456789")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let _ = std::fs::remove_dir_all(&outbox);
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

on_every_backend!(the_seeded_numbers_hold_on_every_backend);
