//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use casebridge::config::{required_env, Config};
use casebridge::mail::ses::SesMailer;
use casebridge::pipeline::SystemClock;
use casebridge::store::dynamo::DynamoStore;
use casebridge_outcome_actions::OutcomeFunction;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    casebridge::telemetry::init_lambda();
    let config = Config::from_env()?;
    let table = required_env("TABLE_NAME")?;
    let aws = casebridge::aws::sdk_config().await;
    let function = OutcomeFunction {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        mailer: SesMailer::new(casebridge::aws::sesv2(&aws), std::env::var("SES_CONFIGURATION_SET").ok()),
        config,
        clock: Box::new(SystemClock),
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        function.handle_any(event.payload).await
    }))
    .await
}
