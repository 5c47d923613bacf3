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
    let state = Arc::new(ApiState {
        store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table),
        agent_token,
    });
    lambda_http::run(router(state)).await
}
