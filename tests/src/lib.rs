//! Support for the integration tests: the local stack (moto for DynamoDB and
//! S3, aws-ses-v2-local for SES v2), a tap on the table's DynamoDB stream so
//! each step is fed the stream records the previous step wrote, SES receipt
//! events, and agents on loopback.
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
use casebridge::pipeline::{Clock, SystemClock};
use casebridge::raw_mail::S3RawMail;
use casebridge::store::dynamo::DynamoStore;
use serde_json::{json, Value};

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
        let shards: Vec<String> = description["StreamDescription"]["Shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ShardId"].as_str().unwrap().to_string())
            .collect();
        let mut iterators = Vec::new();
        for shard in shards {
            let it = self
                .streams_call(
                    "GetShardIterator",
                    json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await;
            iterators.push(it["ShardIterator"].as_str().unwrap().to_string());
        }
        StreamTap { arn, iterators }
    }
}

/// Reads new records from a table's stream and hands them over in the shape
/// Lambda delivers them.
pub struct StreamTap {
    arn: String,
    iterators: Vec<String>,
}

impl StreamTap {
    pub async fn next_event(&mut self, stack: &Stack) -> StreamEvent {
        let mut records = Vec::new();
        for iterator in &mut self.iterators {
            let page = stack.streams_call("GetRecords", json!({"ShardIterator": iterator})).await;
            for mut record in page["Records"].as_array().cloned().unwrap_or_default() {
                record["eventSourceARN"] = json!(self.arn);
                records.push(record);
            }
            if let Some(next) = page["NextShardIterator"].as_str() {
                *iterator = next.to_string();
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

pub fn clock() -> Box<dyn Clock> {
    Box::new(SystemClock)
}

/// The case-context API on loopback, over the given store.
pub async fn spawn_api(store: DynamoStore, token: &str, config: &Config) -> SocketAddr {
    let state = Arc::new(casebridge_http_api::ApiState {
        store,
        agent_token: token.to_string(),
        config: config.clone(),
        secrets: Arc::new(casebridge::secrets::Secrets::env_only()),
        clock: Arc::new(SystemClock),
    });
    casebridge_http_api::spawn_local("127.0.0.1:0".parse().unwrap(), state)
        .await
        .expect("api on loopback")
}

/// The example refund agent on loopback; returns its invoke URL.
pub async fn spawn_refund_agent(api: SocketAddr, token: &str) -> String {
    let addr = refund_agent::spawn(
        "127.0.0.1:0".parse().unwrap(),
        refund_agent::AgentSettings {
            casebridge_api: format!("http://{api}"),
            api_token: token.to_string(),
        },
    )
    .await
    .expect("agent");
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

/// Verifies casebridge's HMAC signature the way an agent would, with its own
/// code (not casebridge's): HMAC-SHA256 over "<timestamp>.<body>", 5-minute window.
pub fn agent_side_signature_ok(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use hmac::Mac;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (get("x-casebridge-timestamp"), get("x-casebridge-signature")) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    signature == format!("v1={expected}")
}

/// An agent on loopback that plays `script` call by call (the last entry
/// repeats), optionally refusing requests without a valid HMAC signature.
pub async fn spawn_scripted_agent(script: Vec<Behaviour>, hmac_secret: Option<&str>) -> ScriptedAgent {
    let calls: Arc<std::sync::Mutex<Vec<ReceivedCall>>> = Arc::default();
    let recorded = calls.clone();
    let secret = hmac_secret.map(str::to_string);
    let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let recorded = recorded.clone();
        let script = script.clone();
        let secret = secret.clone();
        async move {
            use axum::response::IntoResponse;
            if let Some(secret) = &secret {
                if !agent_side_signature_ok(secret, &headers, &body) {
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

/// Secrets fixed in the test, looked up by the `env` name of a reference.
pub struct StaticSecrets(pub std::collections::HashMap<String, String>);

impl casebridge::secrets::SecretResolver for StaticSecrets {
    fn resolve<'a>(&'a self, reference: &'a casebridge::config::SecretRef) -> casebridge::secrets::SecretFuture<'a> {
        let value = reference.env.as_ref().and_then(|name| self.0.get(name)).cloned();
        Box::pin(async move { value.ok_or_else(|| casebridge::secrets::SecretError::NotSet("test secret".into())) })
    }
}

/// The system clock shifted by a fixed amount (to make things overdue).
pub struct ShiftedClock(pub chrono::Duration);

impl Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}
