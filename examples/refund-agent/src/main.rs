//! Runs the example refund agent on its own:
//! `CASEBRIDGE_API=http://127.0.0.1:3000 AGENT_HMAC_SECRET=… cargo run -p refund-agent -- 127.0.0.1:8080`
//! (`AGENT_NAME` defaults to `refund-agent`; `AGENT_KEY_ID` to `1`. `AGENT_TOKEN` instead
//! for a bearer token; with neither, requests are not authenticated).

use refund_agent::{spawn, AgentSecret, AgentSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into()).parse()?;
    let settings = AgentSettings {
        casebridge_api: std::env::var("CASEBRIDGE_API").map_err(|_| "CASEBRIDGE_API is required")?,
        agent_name: std::env::var("AGENT_NAME").unwrap_or_else(|_| "refund-agent".into()),
        auth: match (std::env::var("AGENT_HMAC_SECRET"), std::env::var("AGENT_TOKEN")) {
            (Ok(secret), _) => AgentSecret::Hmac {
                key_id: std::env::var("AGENT_KEY_ID").unwrap_or_else(|_| "1".into()),
                secret,
            },
            (Err(_), Ok(token)) => AgentSecret::Bearer(token),
            _ => AgentSecret::None,
        },
    };
    let bound = spawn(addr, settings).await?;
    println!("refund agent listening on http://{bound}/invoke");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
