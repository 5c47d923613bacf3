//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use casebridge::config::{required_env, Config};
use casebridge::mail::ses::SesMailer;
use casebridge::pipeline::SystemClock;
use casebridge::store::dynamo::DynamoStore;
use casebridge_outcome_actions::OutcomeFunction;
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
    let configuration_set = std::env::var("SES_CONFIGURATION_SET").ok();
    // Clients (TLS set-up) wait for the first event and are then kept: init
    // stays as cheap as an empty function's.
    let function = OnceCell::new();
    let (function, config, table, configuration_set) = (&function, &config, &table, &configuration_set);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let function = function
            .get_or_init(|| async {
                let aws = casebridge::aws::sdk_config().await;
                OutcomeFunction {
                    store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table.clone()),
                    mailer: SesMailer::new(casebridge::aws::sesv2(&aws), configuration_set.clone()),
                    config: config.clone(),
                    clock: Box::new(SystemClock),
                }
            })
            .await;
        function.handle_any(event.payload).await
    }))
    .await
}
