//! Support for the integration tests: the backends a behaviour test runs on
//! ([`backend`]: the embedded one always, the local stack when it runs), the
//! local stack itself (moto for DynamoDB and S3, aws-ses-v2-local for SES
//! v2), a tap on the table's DynamoDB stream so each step is fed the stream
//! records the previous step wrote, SES receipt events, and agents on loopback.
//!
//! The stack is started by `infra/test.sh`. Without it (no
//! `CASEBRIDGE_MOTO_URL`), tests that need it print why and return early —
//! unless `CASEBRIDGE_REQUIRE_STACK=1`, as in CI, where that is a failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::ses::SimpleEmailEvent;
use casebridge::config::Config;
use casebridge::mail::MailSender;
use casebridge::pipeline::{Clock, SystemClock};
use casebridge::raw_mail::S3RawMail;
use casebridge::store::dynamo::DynamoStore;
use casebridge::store::Store;
use serde_json::{json, Value};

pub mod backend;
pub mod meter;
pub use backend::{Backend, MailDrop, MailFaults, SendFault, SentMail, Tap, TestMailer, TestRawMail, TestStore};
pub use meter::{Meter, Usage};

pub struct Stack {
    pub aws: aws_config::SdkConfig,
    pub moto_url: String,
    pub ses_url: String,
    pub http: reqwest::Client,
}

/// The local stack, or None (test skipped) when it is not running.
pub async fn stack() -> Option<Stack> {
    let moto_url = match std::env::var("CASEBRIDGE_MOTO_URL") {
        Ok(url) => url,
        Err(_) => {
            if std::env::var("CASEBRIDGE_REQUIRE_STACK").is_ok_and(|v| v == "1") {
                panic!("CASEBRIDGE_REQUIRE_STACK=1 but CASEBRIDGE_MOTO_URL is not set: start the stack with infra/test.sh");
            }
            eprintln!("skipped: the local stack is not running (run infra/test.sh)");
            return None;
        }
    };
    let ses_url = std::env::var("CASEBRIDGE_SES_LOCAL_URL").unwrap_or_else(|_| "http://127.0.0.1:8005".into());
    Some(Stack {
        aws: casebridge::aws::sdk_config().await,
        moto_url,
        ses_url,
        http: reqwest::Client::new(),
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl Stack {
    /// A fresh table (with its stream) for one test.
    pub async fn table(&self) -> DynamoStore {
        let store = DynamoStore::new(casebridge::aws::dynamodb(&self.aws), unique("cases"));
        store.create_table().await.expect("create table on moto");
        store
    }

    /// A store over `store`'s table whose every DynamoDB request is priced by
    /// the returned meter (see [`meter`]). `store` itself stays unmetered, for
    /// the test's own look-ups.
    pub fn metered(&self, store: &DynamoStore) -> (DynamoStore, Meter) {
        let meter = Meter::new(casebridge::aws::dynamodb(&self.aws));
        let metered = DynamoStore::new(meter.client(&self.aws), store.table());
        (metered, meter)
    }

    /// A fresh bucket for one test, with an S3RawMail reader over it.
    pub async fn bucket(&self) -> (aws_sdk_s3::Client, String, S3RawMail) {
        let client = casebridge::aws::s3(&self.aws);
        let bucket = unique("inbound-mail");
        client.create_bucket().bucket(&bucket).send().await.expect("create bucket on moto");
        let reader = S3RawMail::new(client.clone(), bucket.clone());
        (client, bucket, reader)
    }

    pub fn ses(&self) -> aws_sdk_sesv2::Client {
        casebridge::aws::sesv2(&self.aws)
    }

    /// Mail aws-ses-v2-local has accepted, as its `/store` lists them.
    pub async fn ses_sent(&self) -> Vec<Value> {
        let store: Value = self
            .http
            .get(format!("{}/store", self.ses_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        store["emails"].as_array().cloned().unwrap_or_default()
    }

    /// The mail aws-ses-v2-local holds for an SES MessageId, re-rendered as MIME.
    pub async fn ses_eml(&self, ses_message_id: &str) -> Vec<u8> {
        let value: Value = self
            .http
            .get(format!("{}/get-emlContent?messageId={ses_message_id}", self.ses_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        value["body"]
            .as_str()
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                value["body"]["data"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|b| b.as_u64()).map(|b| b as u8).collect())
            })
            .unwrap_or_default()
    }

    /// Mail sent to one recipient (aws-ses-v2-local keeps one store for all tests).
    pub async fn ses_sent_to(&self, address: &str) -> Vec<Value> {
        self.ses_sent()
            .await
            .into_iter()
            .filter(|m| {
                m["destination"]["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t.as_str().is_some_and(|t| t.contains(address))))
            })
            .collect()
    }

    async fn streams_call(&self, target: &str, body: Value) -> Value {
        let response = self
            .http
            .post(&self.moto_url)
            .header("X-Amz-Target", format!("DynamoDBStreams_20120810.{target}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20261124/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("moto streams call");
        let text = response.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("moto streams {target} answered {text}"))
    }

    /// Starts reading the table's stream from its beginning.
    pub async fn tap(&self, store: &DynamoStore) -> StreamTap {
        let table = store
            .client()
            .describe_table()
            .table_name(store.table())
            .send()
            .await
            .expect("describe table");
        let arn = table.table.and_then(|t| t.latest_stream_arn).expect("table has a stream");
        let description = self.streams_call("DescribeStream", json!({"StreamArn": arn})).await;
        let shards = description["StreamDescription"]["Shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ShardId"].as_str().unwrap().to_string())
            .collect();
        StreamTap {
            arn,
            shards,
            delivered: Default::default(),
            last_sequence: Default::default(),
        }
    }
}

/// Reads new records from a table's stream and hands them over in the shape
/// Lambda delivers them. Each read asks for a fresh iterator after the last
/// sequence number handed over (moto's shard iterators can lose their place
/// after a cancelled transaction, sequence numbers do not) and skips anything
/// already handed over.
pub struct StreamTap {
    arn: String,
    shards: Vec<String>,
    delivered: std::collections::HashSet<String>,
    last_sequence: std::collections::HashMap<String, String>,
}

impl StreamTap {
    pub async fn next_event(&mut self, stack: &Stack) -> StreamEvent {
        let mut records = Vec::new();
        for shard in &self.shards {
            let request = match self.last_sequence.get(shard) {
                Some(sequence) => {
                    json!({"StreamArn": self.arn, "ShardId": shard, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence})
                }
                None => json!({"StreamArn": self.arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
            };
            let start = stack.streams_call("GetShardIterator", request).await;
            let mut iterator = start["ShardIterator"].as_str().map(str::to_string);
            for _ in 0..1000 {
                let Some(current) = iterator.take() else { break };
                let page = stack.streams_call("GetRecords", json!({"ShardIterator": current})).await;
                let page_records = page["Records"].as_array().cloned().unwrap_or_default();
                if page_records.is_empty() {
                    break;
                }
                iterator = page["NextShardIterator"].as_str().map(str::to_string);
                for mut record in page_records {
                    let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default().to_string();
                    self.last_sequence.insert(shard.clone(), sequence.clone());
                    if self.delivered.insert(sequence) {
                        record["eventSourceARN"] = json!(self.arn);
                        records.push(record);
                    }
                }
            }
        }
        serde_json::from_value(json!({ "Records": records })).expect("stream records decode as a Lambda DynamoDB event")
    }
}

/// An SES receipt event for a mail the receipt rule stored under `key`'s SES id.
pub fn ses_event(ses_message_id: &str, spam: &str, virus: &str) -> SimpleEmailEvent {
    let template = include_str!("../../infra/events/inbound-ses-receipt.json");
    let mut value: Value = serde_json::from_str(template).expect("sample SES event parses");
    value["Records"][0]["ses"]["mail"]["messageId"] = json!(ses_message_id);
    value["Records"][0]["ses"]["receipt"]["spamVerdict"]["status"] = json!(spam);
    value["Records"][0]["ses"]["receipt"]["virusVerdict"]["status"] = json!(virus);
    serde_json::from_value(value).expect("SES event decodes")
}

pub const MAIL_PREFIX: &str = "inbound/";

/// Stores raw MIME where the SES S3 action would, returns the SES message id.
pub async fn deliver_to_s3(s3: &aws_sdk_s3::Client, bucket: &str, raw: &[u8]) -> String {
    let ses_id = unique("ses").replace('-', "");
    s3.put_object()
        .bucket(bucket)
        .key(format!("{MAIL_PREFIX}{ses_id}"))
        .body(raw.to_vec().into())
        .send()
        .await
        .expect("put raw mail");
    ses_id
}

pub fn config(agent_url: &str, mode: &str) -> Config {
    let text = include_str!("../../examples/demo.toml")
        .replace("http://127.0.0.1:8080/invoke", agent_url)
        .replace("mode = \"fully_autonomous\"", &format!("mode = \"{mode}\""));
    Config::from_toml(&text).expect("test config")
}

/// The inbound function over a store and a raw-mail source, wired as its
/// Lambda wires it: the catalogue classifier, the system clock, `MAIL_PREFIX`.
pub fn inbound_function<S: casebridge::store::Store, R: casebridge::raw_mail::RawMailSource>(
    store: S,
    raw_mail: R,
    config: &Config,
) -> casebridge_inbound_email::InboundFunction<S, R> {
    casebridge_inbound_email::InboundFunction {
        store,
        raw_mail,
        classifier: Box::new(casebridge::intent::CatalogueClassifier::new(&config.intents)),
        config: config.clone(),
        clock: clock(),
        key_prefix: MAIL_PREFIX.into(),
    }
}

pub fn clock() -> Box<dyn Clock> {
    Box::new(SystemClock)
}

/// The HTTP API on loopback, over the given store and mailer; representatives use `token`.
pub async fn spawn_api<S: Store + 'static, M: MailSender + 'static>(store: S, mailer: M, token: &str, config: &Config) -> SocketAddr {
    spawn_api_with(store, mailer, token, config, Arc::new(casebridge::secrets::Secrets::env_only())).await
}

pub async fn spawn_api_with<S: Store + 'static, M: MailSender + 'static>(
    store: S,
    mailer: M,
    token: &str,
    config: &Config,
    secrets: Arc<dyn casebridge::secrets::SecretResolver>,
) -> SocketAddr {
    let state = Arc::new(casebridge_http_api::ApiState {
        store,
        mailer,
        config: config.clone(),
        secrets,
        clock: Arc::new(SystemClock),
        representatives: casebridge_http_api::RepresentativeAuth::StaticToken(token.to_string()),
    });
    casebridge_http_api::spawn_local("127.0.0.1:0".parse().unwrap(), state)
        .await
        .expect("api on loopback")
}

/// The example refund agent on loopback; returns its invoke URL.
pub async fn spawn_refund_agent(api: SocketAddr) -> String {
    let settings = refund_agent::AgentSettings {
        casebridge_api: format!("http://{api}"),
        agent_name: "refund-agent".into(),
        auth: refund_agent::AgentSecret::None,
    };
    let addr = refund_agent::spawn("127.0.0.1:0".parse().unwrap(), settings).await.expect("agent");
    format!("http://{addr}/invoke")
}

/// An agent that always answers `answer` and counts its calls.
pub async fn spawn_counting_agent(answer: Value) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/invoke",
        axum::routing::post(move || {
            let counter = counter.clone();
            let answer = answer.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/invoke"), calls)
}

/// A customer mail as raw MIME.
pub fn customer_mail(from: &str, subject: &str, message_id: &str, in_reply_to: Option<&str>, body: &str) -> Vec<u8> {
    let threading = in_reply_to
        .map(|p| format!("In-Reply-To: <{p}>\r\nReferences: <{p}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: Customer <{from}>\r\nTo: Example Shop Support <support@shop.example>\r\nSubject: {subject}\r\nDate: Tue, 24 Nov 2026 09:12:00 +0000\r\nMessage-ID: <{message_id}>\r\n{threading}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// What the scripted agent does on one call.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub delay: std::time::Duration,
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
}

impl Behaviour {
    pub fn answer(body: Value) -> Behaviour {
        Behaviour {
            delay: std::time::Duration::ZERO,
            status: 200,
            body: body.to_string(),
            retry_after: None,
        }
    }
    pub fn raw(status: u16, body: &str) -> Behaviour {
        Behaviour {
            delay: std::time::Duration::ZERO,
            status,
            body: body.to_string(),
            retry_after: None,
        }
    }
    pub fn slow(mut self, delay: std::time::Duration) -> Behaviour {
        self.delay = delay;
        self
    }
    pub fn retry_after(mut self, seconds: u64) -> Behaviour {
        self.retry_after = Some(seconds);
        self
    }
}

/// One request the scripted agent received.
#[derive(Clone, Debug)]
pub struct ReceivedCall {
    pub at: std::time::Instant,
    pub body: Value,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
}

pub struct ScriptedAgent {
    pub url: String,
    calls: Arc<std::sync::Mutex<Vec<ReceivedCall>>>,
}

impl ScriptedAgent {
    pub fn calls(&self) -> Vec<ReceivedCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Verifies casebridge's v2 HMAC signature the way an agent would, with its
/// own code (not casebridge's), from docs/agents.md: HMAC-SHA256 over
/// "casebridge-v2", the direction, the agent, the method, the path with query,
/// the timestamp and the body's SHA-256, one a line; 5-minute window.
pub fn agent_side_signature_ok(secret: &str, request: &SignedAtAgent<'_>) -> bool {
    use hmac::Mac;
    use sha2::Digest;
    let get = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (get("x-casebridge-timestamp"), get("x-casebridge-signature")) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if chrono::Utc::now().timestamp().checked_sub(ts).is_none_or(|skew| skew.abs() > 300) {
        return false;
    }
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    let digest: String = sha2::Sha256::digest(request.body).iter().map(|b| format!("{b:02x}")).collect();
    mac.update(
        format!(
            "casebridge-v2\nto-agent\n{}\n{}\n{}\n{timestamp}\n{digest}",
            request.agent, request.method, request.path_and_query
        )
        .as_bytes(),
    );
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    signature == format!("v2={expected}")
}

/// What an agent received, for [`agent_side_signature_ok`].
pub struct SignedAtAgent<'a> {
    pub agent: &'a str,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a axum::http::HeaderMap,
    pub body: &'a [u8],
}

/// An agent on loopback that plays `script` call by call (the last entry
/// repeats), optionally refusing requests without a valid HMAC signature.
pub async fn spawn_scripted_agent(script: Vec<Behaviour>, hmac_secret: Option<&str>) -> ScriptedAgent {
    let calls: Arc<std::sync::Mutex<Vec<ReceivedCall>>> = Arc::default();
    let recorded = calls.clone();
    let secret = hmac_secret.map(str::to_string);
    let handler = move |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let recorded = recorded.clone();
        let script = script.clone();
        let secret = secret.clone();
        async move {
            use axum::response::IntoResponse;
            if let Some(secret) = &secret {
                let request = SignedAtAgent {
                    // The name the test configuration (examples/demo.toml) gives the agent.
                    agent: "refund-agent",
                    method: method.as_str(),
                    path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
                    headers: &headers,
                    body: &body,
                };
                if !agent_side_signature_ok(secret, &request) {
                    return (axum::http::StatusCode::UNAUTHORIZED, "bad signature").into_response();
                }
            }
            let index = {
                let mut calls = recorded.lock().unwrap();
                calls.push(ReceivedCall {
                    at: std::time::Instant::now(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    idempotency_key: headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string),
                    authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
                });
                calls.len() - 1
            };
            let behaviour = script.get(index).or(script.last()).cloned().expect("a script");
            tokio::time::sleep(behaviour.delay).await;
            let mut response = (axum::http::StatusCode::from_u16(behaviour.status).unwrap(), behaviour.body).into_response();
            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
            if let Some(seconds) = behaviour.retry_after {
                response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
            }
            response
        }
    };
    let app = axum::Router::new().route("/invoke", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ScriptedAgent {
        url: format!("http://{addr}/invoke"),
        calls,
    }
}

/// The system clock shifted by a fixed amount (to make things overdue).
pub struct ShiftedClock(pub chrono::Duration);

impl Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}

/// The pipeline on one backend: a fresh store and its stream, the agent and
/// outcome functions, and helpers to feed them and read the results.
pub struct Harness {
    pub backend: Backend,
    pub store: TestStore,
    pub tap: Tap,
    pub config: Config,
    pub agent: casebridge_agent_invocation::AgentFunction<TestStore, casebridge::agent_client::HttpAgentClient>,
    pub outcome: casebridge_outcome_actions::OutcomeFunction<TestStore, TestMailer>,
}

impl Harness {
    /// The day counters of the last and the next fortnight, summed over
    /// intents, by metric name (each test has a table of its own, so on the
    /// stack too they are this scenario's alone).
    pub async fn counted(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let today = chrono::Utc::now().date_naive();
        let counts = self
            .store
            .daily_counts(today - chrono::Duration::days(14), today + chrono::Duration::days(14))
            .await
            .expect("daily counters");
        let mut sums = std::collections::BTreeMap::new();
        for count in counts {
            *sums.entry(count.fact.metric_name()).or_insert(0) += count.value;
        }
        sums
    }

    pub async fn new(backend: Backend, config: Config, agents: casebridge::agent_client::HttpAgentClient) -> Harness {
        let store = backend.store().await;
        let tap = backend.tap(&store).await;
        Harness {
            agent: casebridge_agent_invocation::AgentFunction {
                store: store.clone(),
                agents,
                config: config.clone(),
                clock: clock(),
            },
            outcome: casebridge_outcome_actions::OutcomeFunction {
                store: store.clone(),
                mailer: backend.mailer(),
                config: config.clone(),
                clock: clock(),
            },
            backend,
            store,
            tap,
            config,
        }
    }

    /// The outcome function with the clock moved forward, for follow-ups.
    pub fn outcome_later(&self, shift: chrono::Duration) -> casebridge_outcome_actions::OutcomeFunction<TestStore, TestMailer> {
        casebridge_outcome_actions::OutcomeFunction {
            store: self.store.clone(),
            mailer: self.backend.mailer(),
            config: self.config.clone(),
            clock: Box::new(ShiftedClock(shift)),
        }
    }

    /// Mail the backend's provider accepted for one recipient.
    pub async fn sent_to(&self, address: &str) -> Vec<SentMail> {
        self.backend.sent_to(address).await
    }

    /// A new refund case from a new customer; returns its id.
    pub async fn new_case(&self) -> casebridge::ids::CaseId {
        let customer = format!("{}@customer.example", unique("c"));
        let raw = customer_mail(
            &customer,
            "Refund please",
            &format!("{}@c.example", unique("m")),
            None,
            "I want a refund for order 1234.",
        );
        match self.ingest(&raw).await {
            IngestOutcome::Stored {
                case_id,
                work_item: Some(_),
                ..
            } => case_id,
            other => panic!("case not opened with a work item: {other:?}"),
        }
    }

    pub async fn ingest(&self, raw: &[u8]) -> IngestOutcome {
        self.ingest_at(raw, &SystemClock).await
    }

    pub async fn ingest_at(&self, raw: &[u8], clock: &dyn Clock) -> IngestOutcome {
        let env = casebridge::pipeline::StepEnv::new(&self.config, clock);
        let delivery = casebridge::pipeline::inbound::InboundDelivery {
            raw,
            delivery_id: unique("ses"),
            raw_location: None,
            verdicts: Default::default(),
            attachment_locations: Vec::new(),
        };
        let classifier = casebridge::intent::CatalogueClassifier::new(&self.config.intents);
        casebridge::pipeline::inbound::ingest(env, &self.store, &classifier, delivery)
            .await
            .expect("ingest")
    }

    /// A reply from the case's customer that refers to the case by its subject tag.
    pub async fn customer_writes(&self, case: &casebridge::ids::CaseId, body: &str) -> IngestOutcome {
        let customer = self.case(case).await.customer;
        let raw = customer_mail(
            &customer,
            &format!("Re: Refund please {}", case.subject_tag()),
            &format!("{}@c.example", unique("r")),
            None,
            body,
        );
        self.ingest(&raw).await
    }

    /// Feeds the new stream records to the agent function; returns them for replays.
    pub async fn agent_step(&mut self) -> StreamEvent {
        let event = self.tap.next_event().await;
        let copy = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        let response = self.agent.handle(event, None).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        copy
    }

    /// Feeds the new stream records to the outcome function; returns them for replays.
    pub async fn outcome_step(&mut self) -> StreamEvent {
        let event = self.tap.next_event().await;
        let copy = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        let response = self.outcome.handle(event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        copy
    }

    pub async fn turns(&self, case: &casebridge::ids::CaseId) -> Vec<casebridge::model::AgentTurn> {
        self.records(case, casebridge::model::RecordKind::Turn)
            .await
            .into_iter()
            .filter_map(casebridge::model::Record::into_turn)
            .collect()
    }

    pub async fn outbound(&self, case: &casebridge::ids::CaseId) -> Vec<casebridge::model::OutboundMail> {
        self.records(case, casebridge::model::RecordKind::Outbound)
            .await
            .into_iter()
            .filter_map(casebridge::model::Record::into_outbound)
            .collect()
    }

    pub async fn drafts(&self, case: &casebridge::ids::CaseId) -> Vec<casebridge::model::Draft> {
        self.records(case, casebridge::model::RecordKind::Draft)
            .await
            .into_iter()
            .filter_map(casebridge::model::Record::into_draft)
            .collect()
    }

    async fn records(&self, case: &casebridge::ids::CaseId, kind: casebridge::model::RecordKind) -> Vec<casebridge::model::Record> {
        self.store.list_records(case, kind).await.unwrap()
    }

    pub async fn case(&self, case: &casebridge::ids::CaseId) -> casebridge::model::Case {
        self.store.get_case(case).await.unwrap().unwrap()
    }

    /// Runs one whole turn and returns the stored turn and the case after the outcome.
    pub async fn one_turn(&mut self, case: &casebridge::ids::CaseId) -> (casebridge::model::AgentTurn, casebridge::model::Case) {
        self.agent_step().await;
        self.outcome_step().await;
        let turns = self.turns(case).await;
        (turns.last().cloned().expect("a turn"), self.case(case).await)
    }
}

use casebridge::pipeline::inbound::IngestOutcome;

/// An agent whose answer is chosen per case; unknown cases get NoAction.
pub async fn spawn_mapped_agent() -> (
    String,
    Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>>,
    Arc<AtomicUsize>,
) {
    let answers: Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (map, counter) = (answers.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/invoke",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let (map, counter) = (map.clone(), counter.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let case = request["caseId"].as_str().unwrap_or_default().to_string();
                let answer = map
                    .lock()
                    .unwrap()
                    .get(&case)
                    .cloned()
                    .unwrap_or_else(|| json!({"responseType": "NoAction"}));
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/invoke"), answers, calls)
}

/// A fault to inject for SES requests whose body contains `matching`.
#[derive(Clone, Debug)]
pub struct SesFault {
    pub matching: String,
    pub status: u16,
    pub error_type: String,
    pub remaining: u32,
}

/// A proxy in front of aws-ses-v2-local that fails chosen requests.
pub struct SesProxy {
    pub url: String,
    faults: Arc<std::sync::Mutex<Vec<SesFault>>>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    throttle: Arc<Throttle>,
}

/// Throttles one request in `every` (0 = never) the way SES does.
#[derive(Default)]
struct Throttle {
    every: AtomicUsize,
    count: AtomicUsize,
    throttled: AtomicUsize,
}

impl SesProxy {
    pub fn fail(&self, fault: SesFault) {
        self.faults.lock().unwrap().push(fault);
    }

    /// From now on, one request in `every` is refused with SES's throttling error.
    pub fn throttle_one_in(&self, every: usize) {
        self.throttle.every.store(every, Ordering::SeqCst);
    }

    /// Requests that reached the proxy (failed or not).
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Requests refused by `throttle_one_in`.
    pub fn throttled(&self) -> usize {
        self.throttle.throttled.load(Ordering::SeqCst)
    }

    /// Send requests that mentioned `text` (failed or not).
    pub fn requests_mentioning(&self, text: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|b| b.contains(text)).count()
    }

    /// An SES v2 client that talks through the proxy.
    pub fn client(&self, stack: &Stack) -> aws_sdk_sesv2::Client {
        aws_sdk_sesv2::Client::from_conf(aws_sdk_sesv2::config::Builder::from(&stack.aws).endpoint_url(&self.url).build())
    }
}

pub async fn spawn_ses_proxy(upstream: &str) -> SesProxy {
    let faults: Arc<std::sync::Mutex<Vec<SesFault>>> = Arc::default();
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let throttle: Arc<Throttle> = Arc::default();
    let (rules, log, upstream, throttling) = (faults.clone(), seen.clone(), upstream.to_string(), throttle.clone());
    let http = reqwest::Client::new();
    let handler = move |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let (rules, log, upstream, http, throttling) = (rules.clone(), log.clone(), upstream.clone(), http.clone(), throttling.clone());
        async move {
            use axum::response::IntoResponse;
            let text = String::from_utf8_lossy(&body).to_string();
            log.lock().unwrap().push(text.clone());
            let every = throttling.every.load(Ordering::SeqCst);
            let throttled = every > 0 && throttling.count.fetch_add(1, Ordering::SeqCst) % every == every - 1;
            if throttled {
                throttling.throttled.fetch_add(1, Ordering::SeqCst);
            }
            let fault = if throttled {
                Some(SesFault {
                    matching: String::new(),
                    status: 429,
                    error_type: "TooManyRequestsException".into(),
                    remaining: 0,
                })
            } else {
                let mut rules = rules.lock().unwrap();
                rules.iter_mut().find(|f| f.remaining > 0 && text.contains(&f.matching)).map(|f| {
                    f.remaining -= 1;
                    f.clone()
                })
            };
            if let Some(fault) = fault {
                let mut response = (
                    axum::http::StatusCode::from_u16(fault.status).unwrap(),
                    json!({"message": "injected fault"}).to_string(),
                )
                    .into_response();
                response.headers_mut().insert("x-amzn-errortype", fault.error_type.parse().unwrap());
                response.headers_mut().insert("content-type", "application/json".parse().unwrap());
                return response;
            }
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let mut forward = http.request(method, format!("{upstream}{path}")).body(body.to_vec());
            for (name, value) in &headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes.to_vec()).into_response();
            if let Some(ct) = content_type.and_then(|v| v.to_str().ok().and_then(|s| s.parse().ok())) {
                response.headers_mut().insert("content-type", ct);
            }
            response
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    SesProxy {
        url: format!("http://{addr}"),
        faults,
        seen,
        throttle,
    }
}
