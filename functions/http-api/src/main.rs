//! Wiring only: tracing, configuration, clients built once, the runtime loop.

use std::sync::Arc;

use casebridge::config::{required_env, Config};
use casebridge::mail::ses::SesMailer;
use casebridge::store::dynamo::DynamoStore;
use casebridge_http_api::{router, ApiState, RepresentativeAuth};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    casebridge::telemetry::init_lambda();
    let config = Config::from_env()?;
    let table = required_env("TABLE_NAME")?;
    let aws = casebridge::aws::sdk_config().await;
    let state = Arc::new(ApiState {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        mailer: SesMailer::new(casebridge::aws::sesv2(&aws), std::env::var("SES_CONFIGURATION_SET").ok()),
        config,
        secrets: Arc::new(casebridge::secrets::Secrets::with_secrets_manager(
            casebridge::aws::secrets_manager(&aws),
        )),
        clock: Arc::new(casebridge::pipeline::SystemClock),
        representatives: RepresentativeAuth::ApiGatewayJwt,
    });
    lambda_http::run(router(state)).await
}
