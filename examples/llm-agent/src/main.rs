//! Runs the example LLM agent: `cargo run -p llm-agent -- [ADDR] [--fake-llm]`
//! (ADDR defaults to 127.0.0.1:8090). It serves `POST /invoke` (casebridge's
//! protocol) and `POST /a2a` (A2A), and reads cases from casebridge's MCP server.
//!
//! Environment (see examples/llm-agent/README.md):
//! - `CASEBRIDGE_API` (required): casebridge's API, e.g. `http://127.0.0.1:3000`;
//!   the MCP server is `$CASEBRIDGE_API/mcp` unless `CASEBRIDGE_MCP_URL` says otherwise.
//! - `AGENT_NAME` (default `refund-agent`); `AGENT_TOKEN` for a bearer token, or
//!   `AGENT_HMAC_SECRET` and `AGENT_KEY_ID` (default `1`) for HMAC v2; neither: no auth.
//! - `LLM_BASE_URL` (e.g. `https://api.openai.com`), `LLM_MODEL` (default
//!   `gpt-4o-mini`), `LLM_API_KEY` (optional, never logged), `LLM_TIMEOUT_MS`
//!   (default 30000), `LLM_MAX_ROUNDS` (default 6), `AGENT_TURN_TIMEOUT_MS` (default 60000).
//! - `LLM_PROVIDER=bedrock`: Amazon Bedrock's Converse API instead, with
//!   `BEDROCK_MODEL_ID` (required), `BEDROCK_MAX_TOKENS` (default 1024) and the
//!   SDK's usual credentials and region (`AWS_REGION`, `AWS_PROFILE`, a role).
//! - `--fake-llm`: the scripted fake model on a loopback port instead (offline).

use std::time::Duration;

use llm_agent::fake_llm::{self, Script};
use llm_agent::{spawn, AgentSecret, Settings};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn millis(name: &str, default: u64) -> Result<Duration, String> {
    match env(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name} must be a number of milliseconds")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rmcp=warn".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fake = args.iter().any(|a| a == "--fake-llm");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:8090", String::as_str)
        .parse()?;
    let api = env("CASEBRIDGE_API").ok_or("CASEBRIDGE_API is required (casebridge's API, e.g. http://127.0.0.1:3000)")?;
    let mcp_url = env("CASEBRIDGE_MCP_URL").unwrap_or_else(|| format!("{}/mcp", api.trim_end_matches('/')));
    let auth = match (env("AGENT_HMAC_SECRET"), env("AGENT_TOKEN")) {
        (Some(secret), _) => AgentSecret::Hmac {
            key_id: env("AGENT_KEY_ID").unwrap_or_else(|| "1".into()),
            secret,
        },
        (None, Some(token)) => AgentSecret::Bearer(token),
        _ => AgentSecret::None,
    };
    let bedrock = !fake && env("LLM_PROVIDER").is_some_and(|p| p.eq_ignore_ascii_case("bedrock"));
    let (base_url, model, api_key) = if fake {
        let fake = fake_llm::spawn("127.0.0.1:0".parse()?, Script::Refund).await?;
        println!("fake LLM (scripted refund conversation) on {}", fake.base_url);
        (fake.base_url, "fake-refund-script".to_string(), None)
    } else if bedrock {
        let model_id = env("BEDROCK_MODEL_ID").ok_or("BEDROCK_MODEL_ID is required with LLM_PROVIDER=bedrock")?;
        (String::new(), model_id, None)
    } else {
        (
            env("LLM_BASE_URL").ok_or("LLM_BASE_URL is required (or LLM_PROVIDER=bedrock, or --fake-llm)")?,
            env("LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            env("LLM_API_KEY"),
        )
    };
    let agent_name = env("AGENT_NAME").unwrap_or_else(|| "refund-agent".into());
    let mut settings = Settings::new(&agent_name, auth, &mcp_url, &base_url, &model, api_key);
    settings.llm.timeout = millis("LLM_TIMEOUT_MS", 30_000)?;
    settings.turn_timeout = millis("AGENT_TURN_TIMEOUT_MS", 60_000)?;
    if bedrock {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let max_tokens = match env("BEDROCK_MAX_TOKENS") {
            None => 1024,
            Some(v) => v.parse().map_err(|_| "BEDROCK_MAX_TOKENS must be a number")?,
        };
        settings.bedrock = Some(llm_agent::bedrock::BedrockSettings {
            client: aws_sdk_bedrockruntime::Client::new(&aws),
            model_id: model.clone(),
            max_tokens,
            timeout: settings.llm.timeout,
        });
    }
    if let Some(rounds) = env("LLM_MAX_ROUNDS") {
        settings.max_rounds = rounds.parse().map_err(|_| "LLM_MAX_ROUNDS must be a number")?;
    }
    let provider = if bedrock { "bedrock" } else { "openai-compatible" };
    tracing::info!(agent = %agent_name, auth = ?settings.auth, mcp = %mcp_url, provider, model = %model, "starting");
    let bound = spawn(addr, settings).await?;
    println!("llm agent listening: casebridge protocol http://{bound}/invoke, A2A http://{bound}/a2a");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
