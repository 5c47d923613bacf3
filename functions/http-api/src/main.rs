//! Wiring only: tracing, configuration, clients built once, the runtime loop.

use std::sync::Arc;

use casebridge::config::required_env;
use casebridge::store::dynamo::DynamoStore;
use casebridge_http_api::{router, ApiState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    casebridge::telemetry::init_lambda();
    let table = required_env("TABLE_NAME")?;
    let agent_token = required_env("AGENT_API_TOKEN")?;
    let aws = casebridge::aws::sdk_config().await;
    let config = casebridge::config::Config::from_env()?;
    let state = Arc::new(ApiState {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        agent_token,
        config,
        secrets: Arc::new(casebridge::secrets::Secrets::with_secrets_manager(
            casebridge::aws::secrets_manager(&aws),
        )),
        clock: Arc::new(casebridge::pipeline::SystemClock),
    });
    lambda_http::run(router(state)).await
}
