//! Webhook receipt: `POST /webhooks/codat`.
//! "Sync Complete webhook event" → "Check transactions".

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    // Clients and credentials are built once per cold start and shared by every invocation.
    let services = handler::Services::from_env().await?;
    run(service_fn(|event| handler::handle(&services, event))).await
}
