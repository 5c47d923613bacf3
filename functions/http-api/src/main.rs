//! Wiring only: tracing, configuration, clients built once, the runtime loop.

use std::sync::Arc;

use casebridge::config::{required_env, Config};
use casebridge::mail::ses::SesMailer;
use casebridge::store::dynamo::DynamoStore;
use casebridge_http_api::{router, ApiState, RepresentativeAuth};
use tokio::sync::OnceCell;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    casebridge::telemetry::init_lambda();
    // Configuration is checked at init, so a broken deployment fails there.
    let config = Config::from_env()?;
    // An agent secret that is unset, empty or short stops the deployment here,
    // rather than turning authentication off on the first request.
    casebridge::agent_auth::check_env_secrets(&config, &casebridge::secrets::Secrets::env_only()).await?;
    let table = required_env("TABLE_NAME")?;
    let configuration_set = std::env::var("SES_CONFIGURATION_SET").ok();
    // Clients (TLS set-up) wait for the first request and are then kept: init
    // stays as cheap as an empty function's.
    let app = OnceCell::new();
    let (app, config, table, configuration_set) = (&app, &config, &table, &configuration_set);
    lambda_http::run(lambda_http::service_fn(move |request: lambda_http::Request| async move {
        let app: &axum::Router = app
            .get_or_init(|| async {
                let aws = casebridge::aws::sdk_config().await;
                router(Arc::new(ApiState {
                    store: DynamoStore::new(casebridge::aws::dynamodb(&aws), table.clone()),
                    mailer: SesMailer::new(casebridge::aws::sesv2(&aws), configuration_set.clone()),
                    config: config.clone(),
                    secrets: Arc::new(casebridge::secrets::Secrets::with_secrets_manager(
                        casebridge::aws::secrets_manager(&aws),
                    )),
                    clock: Arc::new(casebridge::pipeline::SystemClock),
                    representatives: RepresentativeAuth::ApiGatewayJwt,
                }))
            })
            .await;
        app.clone().oneshot(request).await
    }))
    .await
}
