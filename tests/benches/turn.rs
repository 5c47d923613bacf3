//! The latency casebridge adds to one agent turn, per protocol: `run_turn`
//! claims the turn (a guarded write), builds the request (casebridge's JSON,
//! or an A2A `SendMessage` with the customer's new text), calls a stub agent
//! on loopback that answers at once, reads and validates the answer (for A2A,
//! maps the task onto the contract) and records it. The stub answers from
//! its own thread and does no work, so what is measured is casebridge's
//! side plus one loopback HTTP round trip: an upper bound of the latency
//! casebridge adds to an agent's own time. Target: at most 1 ms per turn on
//! either protocol. The mail's ingest, which opens the turn, is not measured.
//!
//! `cargo bench -p casebridge-tests --bench turn`

use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentProtocol, Config};
use casebridge::ids::CaseId;
use casebridge::inbound::Verdicts;
use casebridge::intent::CatalogueClassifier;
use casebridge::pipeline::agent::{run_turn, TurnOutcome};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::secrets::Secrets;
use casebridge::store::sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};

const ANSWER: &str = "Your refund of $42 is on its way.";

/// casebridge's protocol: the answer as it is.
async fn casebridge_agent(Json(_request): Json<Value>) -> Json<Value> {
    Json(json!({"responseType": "Resolved", "message": ANSWER}))
}

/// A2A: the request's id answered with a completed task carrying the answer.
async fn a2a_agent(Json(request): Json<Value>) -> Json<Value> {
    let context = request["params"]["message"]["contextId"].clone();
    Json(json!({
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {"task": {
            "id": "task-1",
            "contextId": context,
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"artifactId": "answer", "parts": [{"text": ANSWER}]}]
        }}
    }))
}

/// Both stub agents on their own thread and runtime; returns their base URL.
fn stub_agents() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("agent runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            tx.send(format!("http://{addr}")).expect("send url");
            let app = Router::new()
                .route("/casebridge", post(casebridge_agent))
                .route("/a2a", post(a2a_agent));
            let _ = axum::serve(listener, app).await;
        });
    });
    rx.recv().expect("stub agent url")
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    config: Config,
    classifier: CatalogueClassifier,
    agents: HttpAgentClient,
    store: SqliteStore,
    next: std::cell::Cell<usize>,
}

impl Bench {
    /// A new customer's mail ingested: its case and the turn it opened.
    fn open_turn(&self) -> (CaseId, String) {
        let n = self.next.get();
        self.next.set(n + 1);
        let raw = casebridge_tests::customer_mail(
            &format!("customer{n}@customer.test"),
            "Refund for my order",
            &format!("turn-bench-{n}@customer.test"),
            None,
            "Hello, the blender arrived broken. I would like a refund for order 1234, please.",
        );
        let delivery = InboundDelivery {
            raw: &raw,
            delivery_id: format!("d{n}"),
            raw_location: None,
            verdicts: Verdicts::default(),
            attachment_locations: Vec::new(),
        };
        let env = StepEnv::new(&self.config, &SystemClock);
        match self
            .runtime
            .block_on(ingest(env, &self.store, &self.classifier, delivery))
            .expect("ingest")
        {
            IngestOutcome::Stored {
                case_id,
                work_item: Some(work),
                ..
            } => (case_id, work),
            other => panic!("the mail did not open an agent turn: {other:?}"),
        }
    }

    fn turn(&self, (case_id, work): (CaseId, String)) {
        let env = StepEnv::new(&self.config, &SystemClock);
        let outcome = self
            .runtime
            .block_on(run_turn(env, &self.store, &self.agents, &case_id, &work))
            .expect("turn");
        assert!(matches!(outcome, TurnOutcome::Answered { .. }), "{outcome:?}");
    }
}

fn bench(c: &mut Criterion) {
    let base = stub_agents();
    let mut group = c.benchmark_group("turn");
    group.sample_size(50);
    for (name, path, protocol) in [
        ("casebridge protocol", "/casebridge", AgentProtocol::Casebridge),
        ("A2A", "/a2a", AgentProtocol::A2a),
    ] {
        let mut config = casebridge_tests::config(&format!("{base}{path}"), "fully_autonomous");
        config.agents[0].protocol = protocol;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let agents = runtime
            .block_on(async { HttpAgentClient::new(Arc::new(Secrets::env_only())) })
            .expect("agent client");
        let bench = Bench {
            classifier: CatalogueClassifier::new(&config.intents),
            config,
            runtime,
            agents,
            store: SqliteStore::in_memory().expect("store"),
            next: std::cell::Cell::new(0),
        };
        group.bench_function(format!("one turn, {name}, loopback agent"), |b| {
            b.iter_batched(|| bench.open_turn(), |turn| bench.turn(turn), BatchSize::SmallInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
