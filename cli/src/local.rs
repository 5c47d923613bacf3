//! The pipeline in one process: the steps chained the way the DynamoDB
//! stream chains them in AWS. With the embedded store there is no stream, so
//! the CLI drives the agent and outcome steps itself ([`LocalPipeline::drain`]).

use std::path::Path;
use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::Config;
use casebridge::context::timeline_lines;
use casebridge::ids::CaseId;
use casebridge::inbound::Verdicts;
use casebridge::intent::IntentClassifier;
use casebridge::pipeline::agent::TurnOutcome;
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::outcome::OutcomeReport;
use casebridge::pipeline::{PipelineError, StepEnv, SystemClock};
use casebridge::secrets::SecretResolver;
use casebridge::store::Store;

use crate::backends::{AnyMailer, AnyStore};

pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// A bearer token for local runs (random, 128 bits).
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub struct LocalPipeline {
    pub config: Config,
    pub store: AnyStore,
    pub mailer: AnyMailer,
    pub agents: HttpAgentClient,
    pub classifier: Box<dyn IntentClassifier>,
}

/// What one mail caused, step by step.
pub struct Run {
    pub ingest: IngestOutcome,
    pub turns: Vec<(TurnOutcome, Option<OutcomeReport>)>,
}

impl LocalPipeline {
    /// The classifier is the configuration's: trained on its training files,
    /// or the LLM when `[classifier.llm]` is set.
    pub async fn new(
        config: Config,
        store: AnyStore,
        mailer: AnyMailer,
        secrets: Arc<dyn SecretResolver>,
    ) -> Result<LocalPipeline, CliError> {
        casebridge::agent_auth::check_env_secrets(&config, secrets.as_ref()).await?;
        Ok(LocalPipeline {
            classifier: casebridge::intent::from_config(&config, secrets.as_ref(), None).await?,
            agents: HttpAgentClient::new(secrets)?,
            store,
            mailer,
            config,
        })
    }

    /// Stores one raw mail; returns what it caused to be stored.
    pub async fn ingest(&self, raw: &[u8], delivery_id: &str) -> Result<IngestOutcome, PipelineError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let delivery = InboundDelivery {
            raw,
            delivery_id: delivery_id.to_string(),
            raw_location: None,
            verdicts: Verdicts::default(),
            attachment_locations: Vec::new(),
        };
        ingest(env, &self.store, self.classifier.as_ref(), delivery).await
    }

    /// Ingests one raw mail and runs every step it causes, by the trigger
    /// table, to the end.
    pub async fn process(&self, raw: &[u8], delivery_id: &str) -> Result<Run, CliError> {
        let outcome = self.ingest(raw, delivery_id).await?;
        let mut queue: std::collections::VecDeque<_> = LocalPipeline::jobs_after_ingest(&outcome).into();
        let mut turns: Vec<(TurnOutcome, Option<OutcomeReport>)> = Vec::new();
        while let Some(job) = queue.pop_front() {
            let ran = self.run_job_traced(&job).await?;
            if let Some(turn) = ran.turn {
                turns.push((turn, None));
            }
            if let (Some(report), Some(last)) = (ran.report, turns.last_mut()) {
                last.1 = Some(report);
            }
            queue.extend(ran.next);
        }
        Ok(Run { ingest: outcome, turns })
    }

    /// Runs what a stopped process left half done (see
    /// [`LocalPipeline::recovery_jobs`]) to the end; returns the steps run.
    /// Scans the cases, so it is for the embedded store only.
    pub async fn drain(&self) -> Result<usize, CliError> {
        let jobs = self.recovery_jobs().await?;
        Ok(self.run_to_completion(jobs).await?)
    }
}

pub async fn print_timeline<S: Store>(store: &S, case_id: &CaseId) -> Result<(), CliError> {
    for line in timeline_lines(store, case_id).await? {
        println!("  {line}");
    }
    Ok(())
}

pub async fn ingest_file(pipeline: &LocalPipeline, file: &Path) -> Result<(), CliError> {
    let raw = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let delivery_id = format!("file-{}", &casebridge::ids::sha256_hex(&raw)[..16]);
    let run = pipeline.process(&raw, &delivery_id).await?;
    match &run.ingest {
        IngestOutcome::Stored { case_id, new_case, .. } => {
            println!("{} case {case_id}", if *new_case { "opened" } else { "updated" });
            print_timeline(&pipeline.store, case_id).await?;
        }
        IngestOutcome::Duplicate { message_id } => println!("duplicate of an earlier mail ({message_id}); nothing done"),
        IngestOutcome::Rejected { reason } => println!("rejected: {reason}"),
    }
    Ok(())
}

pub async fn list_cases<S: Store>(store: &S, limit: usize) -> Result<(), CliError> {
    for id in store.list_case_ids(limit).await? {
        if let Some(case) = store.get_case(&id).await? {
            println!(
                "{}  {}  {}  {}",
                case.id,
                case.status,
                case.intent.as_deref().unwrap_or("-"),
                casebridge::inbound::sanitize_header_text(&case.subject, 80)
            );
        }
    }
    Ok(())
}

pub async fn show_case<S: Store>(store: &S, id: &str) -> Result<(), CliError> {
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
    if let Some(escalation) = &case.escalation {
        println!("escalated to {}: {}", escalation.queue, escalation.reason);
    }
    print_timeline(store, &id).await
}
