//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{required_env, Config};
use casebridge::pipeline::SystemClock;
use casebridge::secrets::Secrets;
use casebridge::store::dynamo::DynamoStore;
use casebridge_agent_invocation::AgentFunction;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    casebridge::telemetry::init_lambda();
    let config = Config::from_env()?;
    let table = required_env("TABLE_NAME")?;
    let aws = casebridge::aws::sdk_config().await;
    let secrets = Arc::new(Secrets::with_secrets_manager(casebridge::aws::secrets_manager(&aws)));
    let function = AgentFunction {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        agents: HttpAgentClient::new(secrets)?,
        config,
        clock: Box::new(SystemClock),
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(event.context.deadline as i64);
        function.handle_any(event.payload, deadline).await
    }))
    .await
}
