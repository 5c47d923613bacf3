//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{required_env, Config};
use casebridge::pipeline::SystemClock;
use casebridge::secrets::Secrets;
use casebridge::store::dynamo::DynamoStore;
use casebridge_agent_invocation::{AgentFunction, AgentFunctionError};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    casebridge::telemetry::init_lambda();
    // Configuration is checked at init, so a broken deployment fails there.
    let config = Config::from_env()?;
    // An agent secret that is unset, empty or short stops the deployment here,
    // rather than turning authentication off on the first request.
    casebridge::agent_auth::check_env_secrets(&config, &casebridge::secrets::Secrets::env_only()).await?;
    let table = required_env("TABLE_NAME")?;
    // Clients (TLS set-up) wait for the first event and are then kept: init
    // stays as cheap as an empty function's.
    let function = OnceCell::new();
    let (function, config, table) = (&function, &config, &table);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let function = function
            .get_or_try_init(|| async {
                let aws = casebridge::aws::sdk_config().await;
                let secrets = Arc::new(Secrets::with_secrets_manager(casebridge::aws::secrets_manager(&aws)));
                Ok::<_, AgentFunctionError>(AgentFunction {
                    store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table.clone()),
                    agents: HttpAgentClient::new(secrets).map_err(|e| AgentFunctionError::Setup(e.to_string()))?,
                    config: config.clone(),
                    clock: Box::new(SystemClock),
                })
            })
            .await?;
        let deadline = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(event.context.deadline as i64);
        function.handle_any(event.payload, deadline).await
    }))
    .await
}
