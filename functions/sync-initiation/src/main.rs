//! Sync initiation: "initiate sync (specify datasetIds)" → "syncId".
//! Triggered by the table's stream (a dataset created, a sync lock released) and by a
//! schedule whose sweep also polls syncs whose webhook never came.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    // Clients and credentials are built once per cold start and shared by every invocation.
    let services = handler::Services::from_env().await?;
    run(service_fn(|event| handler::handle(&services, event))).await
}
