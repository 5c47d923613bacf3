//! The whole pipeline in process, per mail: a new customer mail is ingested
//! (parse, screen, link, intent, commit), the agent turn runs against a stub
//! agent on loopback (answering Resolved), and the outcome is carried out
//! (the reply composed, sent to the outbox folder, the case resolved), on the
//! embedded store (in-memory SQLite).
//!
//! The pipeline runs on one thread (one core); the stub agent has its own
//! thread, so its work is not counted — only the HTTP round trip is. Two
//! variants: replies written to the outbox folder (a file per mail), and
//! replies composed but handed to a sender that keeps nothing (no disk I/O).
//! `cargo bench -p casebridge-tests --bench pipeline`

use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::inbound::Verdicts;
use casebridge::intent::CatalogueClassifier;
use casebridge::mail::outbox::OutboxMailer;
use casebridge::mail::{MailError, MailSender, OutgoingMail, SendReceipt};
use casebridge::pipeline::agent::{run_turn, TurnOutcome};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::outcome::carry_out;
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::secrets::Secrets;
use casebridge::store::sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;

const MAILS_PER_BATCH: usize = 50;

/// Accepts every mail and keeps nothing: the pipeline's own cost, without the mail adapter's I/O.
struct DiscardingSender;

impl MailSender for DiscardingSender {
    async fn send(&self, mail: &OutgoingMail) -> Result<SendReceipt, MailError> {
        Ok(SendReceipt {
            provider_message_id: format!("discarded-{}", mail.raw.len()),
        })
    }
}

/// Everything one batch needs but the store and the mail sender.
struct Pipeline {
    runtime: tokio::runtime::Runtime,
    config: casebridge::config::Config,
    classifier: CatalogueClassifier,
    agents: HttpAgentClient,
    clock: SystemClock,
    mails: Vec<Vec<u8>>,
}

impl Pipeline {
    /// Every mail of the batch, from arrival to its reply sent through `mailer`.
    fn mail_to_resolution<M: MailSender>(&self, store: &SqliteStore, mailer: &M) {
        let env = StepEnv::new(&self.config, &self.clock);
        self.runtime.block_on(async {
            for (i, raw) in self.mails.iter().enumerate() {
                let delivery = InboundDelivery {
                    raw,
                    delivery_id: format!("d{i}"),
                    raw_location: None,
                    verdicts: Verdicts::default(),
                    attachment_locations: Vec::new(),
                };
                let IngestOutcome::Stored {
                    case_id,
                    work_item: Some(work),
                    ..
                } = ingest(env, store, &self.classifier, delivery).await.expect("ingest")
                else {
                    panic!("the mail did not open an agent turn");
                };
                let TurnOutcome::Answered { turn, .. } = run_turn(env, store, &self.agents, &case_id, &work).await.expect("turn") else {
                    panic!("the stub agent did not answer");
                };
                let report = carry_out(env, store, mailer, &case_id, &turn).await.expect("outcome");
                assert_eq!(report.sent.len(), 1, "one reply sent");
            }
        })
    }
}

/// The stub agent on its own thread and runtime; returns its URL.
fn stub_agent() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("agent runtime");
        runtime.block_on(async move {
            let (url, _calls) =
                casebridge_tests::spawn_counting_agent(json!({"responseType": "Resolved", "message": "Your refund of $42 is on its way."}))
                    .await;
            tx.send(url).expect("send url");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("stub agent url")
}

fn bench(c: &mut Criterion) {
    let url = stub_agent();
    let config = casebridge_tests::config(&url, "fully_autonomous");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let agents = runtime
        .block_on(async { HttpAgentClient::new(Arc::new(Secrets::env_only())) })
        .expect("agent client");
    let pipeline = Pipeline {
        classifier: CatalogueClassifier::new(&config.intents),
        config,
        runtime,
        agents,
        clock: SystemClock,
        mails: (0..MAILS_PER_BATCH)
            .map(|i| {
                casebridge_tests::customer_mail(
                    &format!("customer{i}@customer.test"),
                    "Refund for my order",
                    &format!("bench-{i}@customer.test"),
                    None,
                    "Hello, the blender arrived broken. I would like a refund for order 1234, please.",
                )
            })
            .collect(),
    };
    let outbox_dir = std::env::temp_dir().join(format!("casebridge-bench-{}", std::process::id()));
    let outbox = OutboxMailer::new(&outbox_dir).expect("outbox");
    let fresh_store = || SqliteStore::in_memory().expect("store");

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(MAILS_PER_BATCH as u64));
    group.sample_size(20);
    group.bench_function("mail to resolution, replies to the outbox folder", |b| {
        b.iter_batched(
            fresh_store,
            |store| pipeline.mail_to_resolution(&store, &outbox),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("mail to resolution, replies composed and discarded", |b| {
        b.iter_batched(
            fresh_store,
            |store| pipeline.mail_to_resolution(&store, &DiscardingSender),
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&outbox_dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
