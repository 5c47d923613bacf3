//! Wiring only: tracing, configuration, clients built once, the runtime loop.
// Nested async state machines (runtime → batch → step → store) exceed the default depth.
#![recursion_limit = "256"]

use casebridge::config::{required_env, Config};
use casebridge::pipeline::SystemClock;
use casebridge::raw_mail::S3RawMail;
use casebridge::store::dynamo::DynamoStore;
use casebridge_inbound_email::InboundFunction;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    casebridge::telemetry::init_lambda();
    let config = Config::from_env()?;
    let table = required_env("TABLE_NAME")?;
    let bucket = required_env("MAIL_BUCKET")?;
    let key_prefix = std::env::var("MAIL_PREFIX").unwrap_or_default();
    let aws = casebridge::aws::sdk_config().await;
    let secrets = casebridge::secrets::Secrets::with_secrets_manager(casebridge::aws::secrets_manager(&aws));
    let classifier = casebridge::intent::from_config(&config, &secrets).await?;
    let function = InboundFunction {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        raw_mail: S3RawMail::new(casebridge::aws::s3(&aws), bucket),
        classifier,
        config,
        clock: Box::new(SystemClock),
        key_prefix,
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        function.handle_any(event.payload).await
    }))
    .await
}
