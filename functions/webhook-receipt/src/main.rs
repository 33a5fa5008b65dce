//! Webhook receipt: `POST /webhooks/codat`.
//! "Sync Complete webhook event" → "Check transactions".

mod handler;

use std::time::Duration;

use expense_sync::codat::CodatClient;
use expense_sync::store::Store;
use expense_sync::webhook::WebhookVerifier;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    let config = expense_sync::aws::sdk_config().await;
    let api_key = expense_sync::secrets::resolve(&config, "CODAT_API_KEY").await?;
    let signing_secret = expense_sync::secrets::resolve(&config, "CODAT_WEBHOOK_SECRET").await.ok();
    let legacy = expense_sync::secrets::resolve(&config, "CODAT_LEGACY_WEBHOOK_AUTHORIZATION").await.ok();
    let services = handler::Services {
        store: Store::from_env(&config)?,
        // Codat waits 15 s for an answer: a slow Codat makes us answer 503 and Codat redelivers.
        codat: CodatClient::from_env(&api_key, Duration::from_secs(8))?,
        verifier: WebhookVerifier::new(signing_secret.as_deref(), legacy.as_deref())?,
    };
    run(service_fn(|request| handler::handle(&services, request))).await
}
