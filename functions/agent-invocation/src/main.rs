//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{required_env, Config};
use casebridge::pipeline::SystemClock;
use casebridge::store::dynamo::DynamoStore;
use casebridge_agent_invocation::AgentFunction;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    casebridge::telemetry::init_lambda();
    let config = Config::from_env()?;
    let table = required_env("TABLE_NAME")?;
    let aws = casebridge::aws::sdk_config().await;
    let function = AgentFunction {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        agents: HttpAgentClient::new()?,
        config,
        clock: Box::new(SystemClock),
    };
    let function = &function;
    run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| async move {
            Ok::<_, Error>(function.handle(event.payload).await)
        },
    ))
    .await
}
