//! Attachment upload: "POST attachment" for each transaction Codat synced as `Completed`,
//! then the expense is marked uploaded. Triggered by the table's stream.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    // Clients and credentials are built once per cold start and shared by every invocation.
    let services = handler::Services::from_env().await?;
    run(service_fn(|event| handler::handle(&services, event))).await
}
