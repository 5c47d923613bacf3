//! `casebridge demo`: the refund scenario on one laptop, no AWS account.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use casebridge::config::Config;
use casebridge::context::timeline_lines;
use casebridge::model::{OutboundStatus, Record, RecordKind};
use casebridge::pipeline::agent::TurnOutcome;
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::Store;

use std::collections::HashMap;

use casebridge::config::{AgentAuth, SecretRef};
use casebridge::mail::outbox::OutboxMailer;
use casebridge::secrets::{FixedSecrets, SecretResolver};

use crate::backends::{AnyMailer, AnyStore};
use crate::local::{CliError, LocalPipeline, Run};

const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");
const FIRST_MAIL: &[u8] = include_bytes!("../../examples/mail/refund-request.eml");

/// `casebridge demo --llm-agent [casebridge|a2a]`: the example LLM agent
/// (`examples/llm-agent`) instead of the refund agent, over casebridge's
/// protocol or A2A, reading the case over MCP and answered by the scripted
/// fake model on loopback (offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmDemo {
    Casebridge,
    A2a,
}

/// The first mail and the customer's reply text of the scenario. The LLM
/// agent looks orders up by number: the first mail names none, so it asks,
/// and the reply gives it.
fn scenario(llm: Option<LlmDemo>) -> (Vec<u8>, &'static str) {
    match llm {
        None => (FIRST_MAIL.to_vec(), "Hi, it was $42.50."),
        Some(_) => {
            let mail = String::from_utf8_lossy(FIRST_MAIL)
                .replace("Subject: Refund for order #1234", "Subject: Broken mugs, refund please")
                .replace(
                    "my order #1234 arrived damaged and I would like a refund, please.",
                    "the mugs I ordered arrived damaged and I would like a refund, please.",
                );
            (mail.into_bytes(), "Hi, it was order #1234.")
        }
    }
}

pub async fn run(outbox: &Path, db: &Path, llm: Option<LlmDemo>) -> Result<(), CliError> {
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if Path::new(&path).exists() {
            std::fs::remove_file(&path)?;
        }
    }
    let token = crate::local::random_token();
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    if let Some(parent) = db.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut config = Config::from_toml(DEMO_CONFIG)?;
    // casebridge and the agent sign every request to each other (HMAC v2)
    // with a key made for this run.
    let key_env = "CASEBRIDGE_DEMO_AGENT_KEY";
    let key = format!("{}{}", crate::local::random_token(), crate::local::random_token());
    for agent in &mut config.agents {
        agent.auth = AgentAuth::Hmac {
            secret: SecretRef {
                env: Some(key_env.into()),
                secret_arn: None,
            },
            scheme: casebridge::config::HmacScheme::V2,
            key_id: "demo".into(),
            previous: None,
        };
    }
    let secrets: Arc<dyn SecretResolver> = Arc::new(FixedSecrets(HashMap::from([(key_env.to_string(), key.clone())])));

    // casebridge's HTTP API, on its own store handle (SQLite file, WAL).
    let api_state = Arc::new(casebridge_http_api::ApiState {
        store: SqliteStore::open(db)?,
        mailer: OutboxMailer::new(outbox)?,
        config: config.clone(),
        secrets: secrets.clone(),
        clock: Arc::new(casebridge::pipeline::SystemClock),
        representatives: casebridge_http_api::RepresentativeAuth::StaticToken(token),
    });
    let api_addr = casebridge_http_api::spawn_local(loopback, api_state).await?;
    let (agent_url, agent_line) = match llm {
        None => {
            let settings = refund_agent::AgentSettings {
                casebridge_api: format!("http://{api_addr}"),
                agent_name: "refund-agent".into(),
                auth: refund_agent::AgentSecret::Hmac {
                    key_id: "demo".into(),
                    secret: key,
                },
            };
            let agent_addr = refund_agent::spawn(loopback, settings).await?;
            let url = format!("http://{agent_addr}/invoke");
            let line = format!("refund-agent at {url} (case context from http://{api_addr})");
            (url, line)
        }
        Some(protocol) => {
            let fake = llm_agent::fake_llm::spawn(loopback, llm_agent::fake_llm::Script::Refund).await?;
            let llm_settings = llm_agent::Settings::new(
                "refund-agent",
                llm_agent::AgentSecret::Hmac {
                    key_id: "demo".into(),
                    secret: key,
                },
                &format!("http://{api_addr}/mcp"),
                &fake.base_url,
                "fake-refund-script",
                None,
            );
            let agent_addr = llm_agent::spawn(loopback, llm_settings).await?;
            let (path, name) = match protocol {
                LlmDemo::Casebridge => ("invoke", "casebridge's protocol"),
                LlmDemo::A2a => ("a2a", "A2A"),
            };
            if protocol == LlmDemo::A2a {
                for agent in &mut config.agents {
                    agent.protocol = casebridge::config::AgentProtocol::A2a;
                }
            }
            let url = format!("http://{agent_addr}/{path}");
            let line = format!(
                "refund-agent: the LLM example agent at {url} ({name}), reading the case over MCP at http://{api_addr}/mcp,\n          \
                 its model the scripted fake at {}",
                fake.base_url
            );
            (url, line)
        }
    };
    for agent in &mut config.agents {
        agent.url = agent_url.clone();
    }
    let (first_mail, reply_text) = scenario(llm);
    let pipeline = LocalPipeline::new(
        config,
        AnyStore::Sqlite(SqliteStore::open(db)?),
        AnyMailer::Outbox(OutboxMailer::new(outbox)?),
        secrets,
    )
    .await?;

    println!("casebridge demo: the refund scenario on the embedded store");
    println!("  store   {}", db.display());
    println!("  outbox  {}/", outbox.display());
    println!("  agent   {agent_line}\n");

    let first = pipeline.process(&first_mail, "demo-1").await?;
    let case_id = match &first.ingest {
        IngestOutcome::Stored { case_id, .. } => case_id.clone(),
        other => return Err(format!("the first demo mail was not stored: {other:?}").into()),
    };
    let case = pipeline.store.get_case(&case_id).await?.ok_or("case vanished")?;
    println!("1. customer mail \"{}\" from {} opened case {case_id}", case.subject, case.customer);
    println!(
        "   intent {} (confidence {:.2}) → agent {}",
        case.intent.as_deref().unwrap_or("-"),
        case.intent_confidence.unwrap_or(0.0),
        case.agent.as_deref().unwrap_or("-")
    );
    let question_file = report_turns(&pipeline, &case_id, &first, "2").await?;
    let question = question_file.ok_or("the agent's question was not sent")?;

    let reply = customer_reply(&pipeline.store, &case_id, reply_text).await?;
    let second = pipeline.process(reply.as_bytes(), "demo-2").await?;
    match &second.ingest {
        IngestOutcome::Stored {
            case_id: linked,
            new_case: false,
            ..
        } if *linked == case_id => {
            println!("3. customer reply (In-Reply-To the question) linked to case {case_id}")
        }
        other => return Err(format!("the customer reply did not link to the case: {other:?}").into()),
    }
    let resolution = report_turns(&pipeline, &case_id, &second, "4")
        .await?
        .ok_or("the resolution was not sent")?;

    let case = pipeline.store.get_case(&case_id).await?.ok_or("case vanished")?;
    println!("5. case {case_id} is {}\n", case.status);
    println!("Mail written: {question}, {resolution}\n");
    println!("Timeline of case {case_id}:");
    for line in timeline_lines(&pipeline.store, &case_id).await? {
        println!("  {line}");
    }
    println!(
        "\nInspect it again with: cargo run -p casebridge-cli -- case show {case_id} --db {}",
        db.display()
    );
    Ok(())
}

/// Prints what the agent turns of one run did; returns the outbox file of the mail sent, if any.
async fn report_turns(
    pipeline: &LocalPipeline,
    case_id: &casebridge::ids::CaseId,
    run: &Run,
    step: &str,
) -> Result<Option<String>, CliError> {
    let mut sent_file = None;
    for (turn, report) in &run.turns {
        match turn {
            TurnOutcome::Answered { result, .. } => {
                let answer = match result {
                    casebridge::model::TurnResult::Answered { response } => response.response_type.to_string(),
                    casebridge::model::TurnResult::Failed { reason } => {
                        format!("nothing (failed: {reason})")
                    }
                };
                println!("{step}. agent answered {answer}");
            }
            TurnOutcome::AwaitingCallback { due_at, .. } => {
                println!("{step}. agent accepted the turn; answer expected by {due_at}")
            }
            TurnOutcome::AlreadyHandled { .. } => println!("{step}. turn already handled"),
            TurnOutcome::Skipped { reason, .. } => println!("{step}. agent not called: {reason}"),
        }
        for id in report.iter().flat_map(|r| r.sent.iter()) {
            let outbound = pipeline
                .store
                .get_record(case_id, id)
                .await?
                .and_then(Record::into_outbound)
                .ok_or("sent mail not stored")?;
            if outbound.status == OutboundStatus::Sent {
                let file = format!(
                    "{}/{}",
                    outbox_dir(pipeline).display(),
                    outbound.provider_message_id.clone().unwrap_or_default()
                );
                println!(
                    "   {} mail \"{}\" sent to {} → {file}",
                    outbound.kind.as_str(),
                    outbound.subject,
                    outbound.to.join(", ")
                );
                sent_file = Some(file);
            }
        }
    }
    Ok(sent_file)
}

/// The customer answers the question, the way a mail client would: a reply
/// to the question's Message-ID with the question quoted below.
async fn customer_reply<S: Store>(store: &S, case_id: &casebridge::ids::CaseId, text: &str) -> Result<String, CliError> {
    let question = store
        .list_records(case_id, RecordKind::Outbound)
        .await?
        .into_iter()
        .filter_map(Record::into_outbound)
        .find(|o| o.status == OutboundStatus::Sent)
        .ok_or("no question was sent")?;
    let mut references = question.references.clone();
    references.push(question.message_id.clone());
    let quoted: String = question.body.lines().map(|l| format!("> {l}\r\n")).collect();
    Ok(format!(
        "From: Ann Customer <ann@customer.example>\r\nTo: Example Shop Support <support@shop.example>\r\nSubject: {}\r\nDate: Tue, 24 Nov 2026 09:30:00 +0000\r\nMessage-ID: <CAF4x7Yq2-refund-1234-reply@mail.customer.example>\r\nIn-Reply-To: <{}>\r\nReferences: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\r\nOn Tue, 24 Nov 2026 at 09:13, Example Shop Support <support@shop.example> wrote:\r\n{quoted}",
        question.subject,
        question.message_id,
        references.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(" "),
    ))
}

fn outbox_dir(pipeline: &LocalPipeline) -> std::path::PathBuf {
    match &pipeline.mailer {
        AnyMailer::Outbox(outbox) => outbox.dir().to_path_buf(),
        AnyMailer::Ses(_) => std::path::PathBuf::from("(SES)"),
    }
}
