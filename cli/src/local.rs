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
use casebridge::model::{Record, RecordKind, TurnStatus};
use casebridge::pipeline::agent::{run_turn, turn_key_for, TurnOutcome};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::outcome::{carry_out, flush_origin, OutcomeReport};
use casebridge::pipeline::{StepEnv, SystemClock};
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

    /// Ingests one raw mail and runs every turn it causes.
    pub async fn process(&self, raw: &[u8], delivery_id: &str) -> Result<Run, CliError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let delivery = InboundDelivery {
            raw,
            delivery_id: delivery_id.to_string(),
            raw_location: None,
            verdicts: Verdicts::default(),
            attachment_locations: Vec::new(),
        };
        let outcome = ingest(env, &self.store, self.classifier.as_ref(), delivery).await?;
        // A new case held for representatives carries a queue notice: send it, as the stream would.
        if let IngestOutcome::Stored {
            case_id,
            mail_id,
            new_case: true,
            work_item: None,
            ..
        } = &outcome
        {
            flush_origin(env, &self.store, &self.mailer, case_id, mail_id).await?;
        }
        let mut turns = Vec::new();
        if let IngestOutcome::Stored {
            case_id,
            work_item: Some(work),
            ..
        } = &outcome
        {
            let mut next = Some(work.clone());
            while let Some(work_item) = next.take() {
                let (turn, report) = self.turn(case_id, &work_item).await?;
                next = report.as_ref().and_then(|r| r.next_work_item.clone());
                turns.push((turn, report));
            }
        }
        Ok(Run { ingest: outcome, turns })
    }

    async fn turn(&self, case_id: &CaseId, work_item: &str) -> Result<(TurnOutcome, Option<OutcomeReport>), CliError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let turn = run_turn(env, &self.store, &self.agents, case_id, work_item).await?;
        let report = match &turn {
            TurnOutcome::Answered { turn, .. } => Some(carry_out(env, &self.store, &self.mailer, case_id, turn).await?),
            _ => None,
        };
        Ok((turn, report))
    }

    /// Does what the stream would trigger: work items without a turn get
    /// their turn, answered turns are carried out. Repeats until nothing is
    /// left; returns the number of steps run. Scans the cases, so it is for
    /// the embedded store only.
    pub async fn drain(&self) -> Result<usize, CliError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let mut steps = 0;
        loop {
            let mut ran = 0;
            for case_id in self.store.list_case_ids(usize::MAX >> 1).await? {
                let turns: Vec<_> = self
                    .store
                    .list_records(&case_id, RecordKind::Turn)
                    .await?
                    .into_iter()
                    .filter_map(Record::into_turn)
                    .collect();
                for work in self
                    .store
                    .list_records(&case_id, RecordKind::WorkItem)
                    .await?
                    .into_iter()
                    .filter_map(Record::into_work_item)
                {
                    if !turns.iter().any(|t| t.id == turn_key_for(&work.id)) {
                        self.turn(&case_id, &work.id).await?;
                        ran += 1;
                    }
                }
                for turn in turns.iter().filter(|t| t.status == TurnStatus::Answered) {
                    carry_out(env, &self.store, &self.mailer, &case_id, &turn.id).await?;
                    ran += 1;
                }
            }
            if ran == 0 {
                return Ok(steps);
            }
            steps += ran;
        }
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
