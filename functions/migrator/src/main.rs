//! The migrator Lambda behind the stack's migrations custom resource. A configuration or
//! connection problem is reported to CloudFormation as FAILED rather than crashing the init,
//! which would leave the stack waiting for an answer for an hour.

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::{
    PostgresOrderStore, ensure_application_role, run_migrations,
};
use order_shared::adapters::secrets::SecretReader;
use order_shared::config::process_env;
use order_shared::handlers::migrator::{
    CustomResourceRequest, handle_custom_resource, send_response,
};
use order_shared::ports::BoxError;
use order_shared::telemetry::{error_chain, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let sdk = aws_sdk_config().await;
    let store: Result<PostgresOrderStore, String> = async {
        let database = process_env().database(1).map_err(|e| e.to_string())?;
        PostgresOrderStore::connect(&database, &sdk)
            .await
            .map_err(|e| error_chain(&e))
    }
    .await;
    // The role the other functions connect as (APP_DATABASE_SECRET_ARN); its secret is read on
    // every run, so a rotated password is what the role gets.
    let application_role = process_env().application_role_secret();
    let secrets = SecretReader::new(&sdk);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (store, http, application_role, secrets) = (&store, &http, &application_role, &secrets);

    lambda_runtime::run(service_fn(
        |event: LambdaEvent<CustomResourceRequest>| async move {
            let request = event.payload;
            let response = handle_custom_resource(&request, || async {
                let store = store.as_ref().map_err(|e| -> BoxError { e.clone().into() })?;
                let mut applied = run_migrations(store.pool()).await?;
                if let Some(arn) = application_role {
                    let role = secrets.database_secret(arn).await?;
                    ensure_application_role(store.pool(), &role.username, &role.password).await?;
                    applied.push(format!("role {} granted", role.username));
                }
                Ok(applied)
            })
            .await;
            if let Err(error) = send_response(http, &request.response_url, &response).await {
                tracing::error!(error = %error_chain(error.as_ref()), "could not answer CloudFormation");
                return Err(lambda_runtime::Error::from(error.to_string()));
            }
            Ok::<(), lambda_runtime::Error>(())
        },
    ))
    .await
}
