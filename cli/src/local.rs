//! The pipeline in one process: the three steps chained the way the DynamoDB
//! stream chains them in AWS, on the embedded store.

use std::path::Path;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::Config;
use casebridge::context::timeline_lines;
use casebridge::ids::CaseId;
use casebridge::inbound::Verdicts;
use casebridge::intent::KeywordClassifier;
use casebridge::mail::outbox::OutboxMailer;
use casebridge::pipeline::agent::{run_turn, TurnOutcome};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::outcome::{carry_out, OutcomeReport};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::Store;

pub type CliError = Box<dyn std::error::Error + Send + Sync>;

pub struct LocalPipeline {
    pub config: Config,
    pub store: SqliteStore,
    pub mailer: OutboxMailer,
    pub agents: HttpAgentClient,
    pub classifier: KeywordClassifier,
}

/// What one mail caused, step by step.
pub struct Run {
    pub ingest: IngestOutcome,
    pub turns: Vec<(TurnOutcome, Option<OutcomeReport>)>,
}

impl LocalPipeline {
    pub fn open(config: Config, db: &Path, outbox: &Path) -> Result<LocalPipeline, CliError> {
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(LocalPipeline {
            classifier: KeywordClassifier::new(&config.intents),
            store: SqliteStore::open(db)?,
            mailer: OutboxMailer::new(outbox)?,
            agents: HttpAgentClient::new(std::sync::Arc::new(casebridge::secrets::Secrets::env_only()))?,
            config,
        })
    }

    pub async fn process(&self, raw: &[u8], delivery_id: &str) -> Result<Run, CliError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let delivery = InboundDelivery {
            raw,
            delivery_id: delivery_id.to_string(),
            raw_location: None,
            verdicts: Verdicts::default(),
        };
        let outcome = ingest(env, &self.store, &self.classifier, delivery).await?;
        let mut turns = Vec::new();
        if let IngestOutcome::Stored {
            case_id,
            work_item: Some(work),
            ..
        } = &outcome
        {
            let mut next = Some(work.clone());
            while let Some(work_item) = next.take() {
                let turn = run_turn(env, &self.store, &self.agents, case_id, &work_item).await?;
                let report = match &turn {
                    TurnOutcome::Answered { turn, .. } => Some(carry_out(env, &self.store, &self.mailer, case_id, turn).await?),
                    _ => None,
                };
                next = report.as_ref().and_then(|r| r.next_work_item.clone());
                turns.push((turn, report));
            }
        }
        Ok(Run { ingest: outcome, turns })
    }
}

pub async fn ingest_file(file: &Path, config: &Path, db: &Path, outbox: &Path) -> Result<(), CliError> {
    let pipeline = LocalPipeline::open(Config::from_file(config)?, db, outbox)?;
    let raw = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let delivery_id = format!("file-{}", &casebridge::ids::sha256_hex(&raw)[..16]);
    let run = pipeline.process(&raw, &delivery_id).await?;
    match &run.ingest {
        IngestOutcome::Stored { case_id, new_case, .. } => {
            println!("{} case {case_id}", if *new_case { "opened" } else { "updated" });
            for line in timeline_lines(&pipeline.store, case_id).await? {
                println!("  {line}");
            }
        }
        IngestOutcome::Duplicate { message_id } => {
            println!("duplicate of an earlier mail ({message_id}); nothing done")
        }
        IngestOutcome::Rejected { reason } => println!("rejected: {reason}"),
    }
    Ok(())
}

pub async fn show_case(id: &str, db: &Path) -> Result<(), CliError> {
    if !db.exists() {
        return Err(format!("no store at {}", db.display()).into());
    }
    let store = SqliteStore::open(db)?;
    let id = CaseId::parse(id).ok_or_else(|| format!("{id:?} is not a case id"))?;
    let case = store.get_case(&id).await?.ok_or_else(|| format!("case {id} does not exist"))?;
    println!(
        "case {}  status: {}  intent: {}  agent: {}",
        case.id,
        case.status,
        case.intent.as_deref().unwrap_or("-"),
        case.agent.as_deref().unwrap_or("-")
    );
    println!("subject: {}\ncustomer: {}", case.subject, case.customer);
    for line in timeline_lines(&store, &id).await? {
        println!("  {line}");
    }
    Ok(())
}
