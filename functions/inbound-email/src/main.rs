//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use casebridge::config::{required_env, Config};
use casebridge::pipeline::SystemClock;
use casebridge::raw_mail::S3RawMail;
use casebridge::store::dynamo::DynamoStore;
use casebridge_inbound_email::{InboundFunction, InboundFunctionError};
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
    let bucket = required_env("MAIL_BUCKET")?;
    let key_prefix = std::env::var("MAIL_PREFIX").unwrap_or_default();
    // Clients (TLS set-up, a Secrets Manager call for an LLM key) wait for the
    // first event and are then kept: init stays as cheap as an empty function's.
    let function = OnceCell::new();
    let (function, config, table, bucket, key_prefix) = (&function, &config, &table, &bucket, &key_prefix);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let function = function
            .get_or_try_init(|| async {
                let aws = casebridge::aws::sdk_config().await;
                let secrets = casebridge::secrets::Secrets::with_secrets_manager(casebridge::aws::secrets_manager(&aws));
                let s3 = casebridge::aws::s3(&aws);
                let classifier = casebridge::intent::from_config(config, &secrets, Some(&s3))
                    .await
                    .map_err(|e| InboundFunctionError::Setup(e.to_string()))?;
                Ok::<_, InboundFunctionError>(InboundFunction {
                    store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table.clone()),
                    raw_mail: S3RawMail::new(s3, bucket.clone()),
                    classifier,
                    config: config.clone(),
                    clock: Box::new(SystemClock),
                    key_prefix: key_prefix.clone(),
                })
            })
            .await?;
        function.handle_any(event.payload).await
    }))
    .await
}
