//! Load and faults through the real handlers, on the local stack: DynamoDB and
//! S3 on moto, SES v2 on aws-ses-v2-local behind a throttling proxy, and a stub
//! agent on loopback that fails one call in ten in every way an agent can.
//!
//! Cases are opened by one mail each; then every case gets two replies at the
//! same moment. 30% of deliveries are delivered again (half under the same SES
//! id, half under a new one). The stream is fed to the agent and outcome
//! functions in batches of 10, as Lambda does, with failed batches retried from
//! the reported record.
//!
//! It prints throughput, step latencies and request counts, then checks the
//! invariants and exits non-zero if any fails: every mail stored once, every
//! case in a settled state, no turn answered twice, no mail sent twice.
//!
//! `cargo bench -p casebridge-tests --bench load -- --mails 10000` (default 10,000)
//! `cargo test -p casebridge-tests --bench load -- --mails 300` (the CI run)
//! Needs the local stack (`infra/local-stack.sh start` and its `env`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use casebridge::model::{CaseStatus, OutboundStatus, Record, RecordKind};
use casebridge::raw_mail::S3RawMail;
use casebridge::store::dynamo::DynamoStore;
use casebridge::store::Store;
use casebridge_agent_invocation::AgentFunction;
use casebridge_inbound_email::InboundFunction;
use casebridge_outcome_actions::OutcomeFunction;
use casebridge_tests::*;
use serde_json::{json, Value};

const BATCH_SIZE: usize = 10;
const MAX_RECORD_RETRIES: usize = 10;
const DELIVERY_CONCURRENCY: usize = 8;

/// The functions' store: every DynamoDB request it makes is priced by the run's meter.
type MeteredStore = DynamoStore;

/// A stub agent: 90% of calls answer Resolved; the rest fail, cycling through
/// every failure the agent client handles. Tracks, per turn, whether a good
/// answer was already given, to catch a turn answered twice.
#[derive(Default)]
struct StubAgent {
    calls: AtomicUsize,
    faults: AtomicUsize,
    answered: Mutex<HashSet<String>>,
    double_calls: AtomicUsize,
}

const FAULTS: &[&str] = &["500", "503", "429", "invalid json", "unknown type", "no message", "too slow"];

async fn spawn_stub_agent(timeout: Duration) -> (String, Arc<StubAgent>) {
    let stub = Arc::new(StubAgent::default());
    let state = stub.clone();
    let app = axum::Router::new().route(
        "/invoke",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let stub = state.clone();
            async move {
                use axum::http::StatusCode;
                use axum::response::IntoResponse;
                let call = stub.calls.fetch_add(1, Ordering::SeqCst);
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                let turn = format!(
                    "{}/{}",
                    request["caseId"].as_str().unwrap_or("?"),
                    headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("?")
                );
                // Deterministic: calls 7, 17, 27… fail, each time the next kind of failure.
                if call % 10 == 7 {
                    let kind = FAULTS[stub.faults.fetch_add(1, Ordering::SeqCst) % FAULTS.len()];
                    let json_type = [("content-type", "application/json")];
                    return match kind {
                        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                        "503" => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                        "429" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "slow down").into_response(),
                        "invalid json" => (StatusCode::OK, json_type, "{\"responseType\": \"Resol").into_response(),
                        "unknown type" => (StatusCode::OK, json_type, "{\"responseType\": \"Maybe\", \"message\": \"?\"}").into_response(),
                        "no message" => (StatusCode::OK, json_type, "{\"responseType\": \"Question\"}").into_response(),
                        _ => {
                            tokio::time::sleep(timeout + Duration::from_millis(100)).await;
                            (StatusCode::OK, json_type, "{\"responseType\": \"NoAction\"}").into_response()
                        }
                    };
                }
                if !stub.answered.lock().unwrap().insert(turn) {
                    stub.double_calls.fetch_add(1, Ordering::SeqCst);
                }
                axum::Json(json!({"responseType": "Resolved", "message": "Your refund is on its way."})).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/invoke"), stub)
}

#[derive(Default)]
struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn add(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
    fn total(&self) -> Duration {
        self.0.lock().unwrap().iter().sum()
    }

    fn summary(&self) -> String {
        let mut all = self.0.lock().unwrap().clone();
        if all.is_empty() {
            return "none".into();
        }
        all.sort();
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        format!(
            "n={} p50={:.1} ms p99={:.1} ms total={:.1} s",
            all.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            self.total().as_secs_f64()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Delivery {
    ses_id: String,
    message_id: String,
}

struct Run {
    stack: Stack,
    /// The table without the meter, for the invariant checks.
    plain: DynamoStore,
    meter: Meter,
    inbound: Arc<InboundFunction<MeteredStore, S3RawMail>>,
    agent: AgentFunction<MeteredStore, casebridge::agent_client::HttpAgentClient>,
    outcome: OutcomeFunction<MeteredStore, casebridge::mail::ses::SesMailer>,
    s3: aws_sdk_s3::Client,
    bucket: String,
    tap: StreamTap,
    inbound_latency: Arc<Latencies>,
    agent_latency: Latencies,
    outcome_latency: Latencies,
    stream_read: Latencies,
    stream_retries: usize,
    dead_letters: usize,
    inbound_retries: Arc<AtomicU64>,
}

impl Run {
    /// Delivers every mail (and its redeliveries) at once, DELIVERY_CONCURRENCY at a time.
    async fn deliver_all(&self, deliveries: Vec<Delivery>) {
        let concurrency = std::env::var("CASEBRIDGE_LOAD_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DELIVERY_CONCURRENCY);
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in deliveries {
            let (inbound, permits, latency, retries) = (
                self.inbound.clone(),
                permits.clone(),
                self.inbound_latency.clone(),
                self.inbound_retries.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                // As SES + Lambda: an invocation that fails is invoked again.
                for attempt in 0..10u64 {
                    let started = Instant::now();
                    let result = inbound.handle(ses_event(&delivery.ses_id, "PASS", "PASS")).await;
                    latency.add(started.elapsed());
                    if result.is_ok() {
                        return;
                    }
                    retries.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
                }
                panic!("delivery {} ({}) never succeeded", delivery.ses_id, delivery.message_id);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("delivery task");
        }
    }

    /// Feeds the stream to both functions until nothing new arrives.
    async fn drain_stream(&mut self) {
        let mut agent_queue: Vec<EventRecord> = Vec::new();
        let mut outcome_queue: Vec<EventRecord> = Vec::new();
        let mut retries: HashMap<String, usize> = HashMap::new();
        let mut idle_rounds = 0;
        while idle_rounds < 3 {
            let started = Instant::now();
            let event = self.tap.next_event(&self.stack).await;
            self.stream_read.add(started.elapsed());
            if event.records.is_empty() && agent_queue.is_empty() && outcome_queue.is_empty() {
                idle_rounds += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            idle_rounds = 0;
            agent_queue.extend(event.records.iter().cloned());
            outcome_queue.extend(event.records);
            // Both event source mappings read the same stream, one batch at a time.
            while !agent_queue.is_empty() || !outcome_queue.is_empty() {
                if !agent_queue.is_empty() {
                    let batch: Vec<EventRecord> = agent_queue.drain(..agent_queue.len().min(BATCH_SIZE)).collect();
                    let started = Instant::now();
                    let response = self.agent.handle(event_of(&batch), None).await;
                    self.agent_latency.add(started.elapsed());
                    let failed = response.batch_item_failures.first().and_then(|f| f.item_identifier.clone());
                    self.requeue(&mut agent_queue, batch, failed, &mut retries);
                }
                if !outcome_queue.is_empty() {
                    let batch: Vec<EventRecord> = outcome_queue.drain(..outcome_queue.len().min(BATCH_SIZE)).collect();
                    let started = Instant::now();
                    let response = self.outcome.handle(event_of(&batch)).await;
                    self.outcome_latency.add(started.elapsed());
                    let failed = response.batch_item_failures.first().and_then(|f| f.item_identifier.clone());
                    self.requeue(&mut outcome_queue, batch, failed, &mut retries);
                }
            }
        }
    }

    /// Lambda retries a batch from the first failed record; after too many
    /// retries a record goes to the dead-letter queue.
    fn requeue(
        &mut self,
        queue: &mut Vec<EventRecord>,
        batch: Vec<EventRecord>,
        failed: Option<String>,
        retries: &mut HashMap<String, usize>,
    ) {
        let Some(failed) = failed else { return };
        let from = batch
            .iter()
            .position(|r| r.change.sequence_number.as_deref() == Some(failed.as_str()))
            .unwrap_or(0);
        let count = retries.entry(failed).or_default();
        *count += 1;
        self.stream_retries += 1;
        let mut again: Vec<EventRecord> = batch.into_iter().skip(from).collect();
        if *count > MAX_RECORD_RETRIES {
            self.dead_letters += 1;
            again.remove(0);
        }
        again.append(queue);
        *queue = again;
    }
}

fn event_of(records: &[EventRecord]) -> Event {
    let mut event = Event::default();
    event.records = records.to_vec();
    event
}

fn parse_mails(args: &[String]) -> usize {
    args.windows(2)
        .find(|w| w[0] == "--mails")
        .and_then(|w| w[1].parse().ok())
        .or_else(|| std::env::var("CASEBRIDGE_LOAD_MAILS").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(10_000)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test` asks benches to list their tests.
    }
    let mails = parse_mails(&args).max(3);
    let Some(stack) = stack().await else {
        if std::env::var("CASEBRIDGE_REQUIRE_STACK").is_ok_and(|v| v == "1") {
            std::process::exit(2);
        }
        return;
    };
    let cases = mails / 3;
    let run_id = unique("load");
    let domain = format!("{run_id}.test");

    let agent_timeout = Duration::from_millis(300);
    let (agent_url, stub) = spawn_stub_agent(agent_timeout).await;
    let mut config = config(&agent_url, "fully_autonomous");
    for agent in &mut config.agents {
        agent.timeout_ms = agent_timeout.as_millis() as u64;
        agent.max_attempts = 3;
    }
    let ses_proxy = spawn_ses_proxy(&stack.ses_url).await;
    ses_proxy.throttle_one_in(25);
    let plain = stack.table().await;
    let (store, meter) = stack.metered(&plain);
    let (s3, bucket, raw_mail) = stack.bucket().await;
    let tap = stack.tap(&plain).await;
    let mut run = Run {
        inbound: Arc::new(inbound_function(store.clone(), raw_mail, &config)),
        agent: AgentFunction {
            store: store.clone(),
            agents: casebridge::agent_client::HttpAgentClient::new(Arc::new(casebridge::secrets::Secrets::env_only())).unwrap(),
            config: config.clone(),
            clock: clock(),
        },
        outcome: OutcomeFunction {
            store: store.clone(),
            mailer: casebridge::mail::ses::SesMailer::new(ses_proxy.client(&stack), None),
            config: config.clone(),
            clock: clock(),
        },
        plain,
        meter,
        s3,
        bucket,
        tap,
        stack,
        inbound_latency: Arc::default(),
        agent_latency: Latencies::default(),
        outcome_latency: Latencies::default(),
        stream_read: Latencies::default(),
        stream_retries: 0,
        dead_letters: 0,
        inbound_retries: Arc::default(),
    };
    eprintln!("load: {mails} mails ({cases} cases × 3), 30% redelivered, 1 agent call in 10 failing, 1 SES call in 25 throttled");

    // Raw mail into S3 first (the receipt rule's S3 action), outside the timing.
    let mut distinct_ids = Vec::new();
    let mut first = Vec::new();
    let mut replies = Vec::new();
    for c in 0..cases {
        let customer = format!("customer{c}@{domain}");
        let opening = format!("open-{c}@{domain}");
        let body = format!("I would like a refund for order {c}, please.");
        first.push((
            opening.clone(),
            customer_mail(&customer, "Refund for my order", &opening, None, &body),
        ));
        for r in 0..2 {
            let id = format!("reply-{c}-{r}@{domain}");
            let body = format!("More detail {r} about order {c}.");
            replies.push((
                id.clone(),
                customer_mail(&customer, "Re: Refund for my order", &id, Some(&opening), &body),
            ));
        }
    }
    distinct_ids.extend(first.iter().chain(replies.iter()).map(|(id, _)| id.clone()));
    let mut staged = Vec::new();
    for set in [first, replies] {
        let mut deliveries = Vec::new();
        for (i, (message_id, raw)) in set.into_iter().enumerate() {
            let ses_id = deliver_to_s3(&run.s3, &run.bucket, &raw).await;
            // 30% redelivered: alternately the same SES id (a Lambda retry) and a new one (SES resent it).
            if i % 10 < 3 {
                let again = if i % 2 == 0 {
                    ses_id.clone()
                } else {
                    deliver_to_s3(&run.s3, &run.bucket, &raw).await
                };
                deliveries.push(Delivery {
                    ses_id: again,
                    message_id: message_id.clone(),
                });
            }
            deliveries.push(Delivery { ses_id, message_id });
        }
        staged.push(deliveries);
    }
    let total_deliveries: usize = staged.iter().map(Vec::len).sum();

    let started = Instant::now();
    let mut inbound_time = Duration::ZERO;
    for mut deliveries in staged {
        // Replies of one case next to each other: the two arrive at the same moment.
        deliveries.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        let phase_start = Instant::now();
        run.deliver_all(deliveries).await;
        inbound_time += phase_start.elapsed();
        run.drain_stream().await;
    }
    let elapsed = started.elapsed();

    // Figures.
    let usage = run.meter.usage();
    let ses_requests = ses_proxy.requests();
    let per_mail = |x: f64| x / mails as f64;
    println!("mails {mails}, deliveries {total_deliveries}, cases {cases}");
    println!(
        "throughput: {:.0} mails/s end to end ({:.1} s); inbound alone {:.0} mails/s",
        mails as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        total_deliveries as f64 / inbound_time.as_secs_f64()
    );
    println!("inbound handler per delivery: {}", run.inbound_latency.summary());
    println!("agent function per batch of ≤{BATCH_SIZE}: {}", run.agent_latency.summary());
    println!("outcome function per batch of ≤{BATCH_SIZE}: {}", run.outcome_latency.summary());
    println!("stream reads (the harness's, as Lambda's poller): {}", run.stream_read.summary());
    println!(
        "DynamoDB per mail: {:.1} requests ({:.1} transactions of which {:.2} cancelled, {:.1} other writes, {:.1} reads, {:.1} query pages); {:.1} write units ({:.1} of them to indexes, {:.1} for cancelled transactions), {:.1} read units (DynamoDB's pricing rules, metered on the SDK's requests)",
        per_mail((usage.transactions + usage.writes + usage.reads + usage.queries) as f64),
        per_mail(usage.transactions as f64),
        per_mail(usage.cancelled as f64),
        per_mail(usage.writes as f64),
        per_mail(usage.reads as f64),
        per_mail(usage.queries as f64),
        per_mail(usage.write_units),
        per_mail(usage.index_write_units),
        per_mail(usage.cancelled_write_units),
        per_mail(usage.read_units)
    );
    println!(
        "SES per mail: {:.2} calls ({} throttled); agent: {} calls, {} failed by design",
        per_mail(ses_requests as f64),
        ses_proxy.throttled(),
        stub.calls.load(Ordering::SeqCst),
        stub.faults.load(Ordering::SeqCst)
    );
    println!(
        "retries: {} inbound invocations, {} stream batches; dead letters {}",
        run.inbound_retries.load(Ordering::SeqCst),
        run.stream_retries,
        run.dead_letters
    );

    // Invariants.
    let mut broken: Vec<String> = Vec::new();
    if usage.unmetered > 0 {
        broken.push(format!("{} DynamoDB requests the meter could not price", usage.unmetered));
    }
    let store = &run.plain;
    let mut lost = 0;
    let mut case_ids = HashSet::new();
    for id in &distinct_ids {
        match store.case_for_message_id(id).await.expect("index lookup") {
            Some(case) => {
                case_ids.insert(case);
            }
            None => lost += 1,
        }
    }
    if lost > 0 {
        broken.push(format!("{lost} mails not stored"));
    }
    if case_ids.len() != cases {
        broken.push(format!("{} cases, expected {cases}", case_ids.len()));
    }
    let mut stored_mails = 0;
    let mut sent = 0;
    let mut unsettled = Vec::new();
    let mut provider_ids = HashSet::new();
    let mut double_sends = 0;
    for case_id in &case_ids {
        let case = store.get_case(case_id).await.unwrap().expect("case");
        stored_mails += store.list_records(case_id, RecordKind::Mail).await.unwrap().len();
        let settled = matches!(
            case.status,
            CaseStatus::Resolved | CaseStatus::WaitingOnCustomer | CaseStatus::Escalated | CaseStatus::Idle | CaseStatus::Closed
        ) && case.turn_in_flight.is_none()
            && (case.pending_mail.is_empty() || case.status == CaseStatus::Escalated);
        if !settled {
            unsettled.push(format!(
                "{case_id} {:?} turn {:?} pending {}",
                case.status,
                case.turn_in_flight,
                case.pending_mail.len()
            ));
        }
        for outbound in store
            .list_records(case_id, RecordKind::Outbound)
            .await
            .unwrap()
            .into_iter()
            .filter_map(Record::into_outbound)
        {
            if outbound.status == OutboundStatus::Sent {
                sent += 1;
                if !provider_ids.insert(outbound.provider_message_id.clone()) {
                    double_sends += 1;
                }
            }
        }
    }
    if stored_mails != distinct_ids.len() {
        broken.push(format!("{stored_mails} mail records for {} distinct mails", distinct_ids.len()));
    }
    if !unsettled.is_empty() {
        broken.push(format!("{} cases not settled, e.g. {}", unsettled.len(), unsettled[0]));
    }
    let double_calls = stub.double_calls.load(Ordering::SeqCst);
    if double_calls > 0 {
        broken.push(format!("{double_calls} turns answered twice by the agent"));
    }
    let accepted_by_ses = run
        .stack
        .ses_sent()
        .await
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .and_then(casebridge::ids::CaseId::find_in_subject)
                .is_some_and(|id| case_ids.contains(&id))
        })
        .count();
    if accepted_by_ses != sent || double_sends > 0 {
        broken.push(format!(
            "{accepted_by_ses} mails reached SES for {sent} outbound records marked sent ({double_sends} provider ids repeated)"
        ));
    }
    if run.dead_letters > 0 {
        broken.push(format!("{} stream records dead-lettered", run.dead_letters));
    }
    println!("invariants: {stored_mails} mails stored for {} distinct, {} cases, {sent} sent = {accepted_by_ses} at SES, {double_calls} turns answered twice", distinct_ids.len(), case_ids.len());
    if broken.is_empty() {
        println!("invariants hold");
    } else {
        for b in &broken {
            eprintln!("INVARIANT BROKEN: {b}");
        }
        std::process::exit(1);
    }
}
