//! Sync initiation: "initiate sync (specify datasetIds)" → "syncId".
//! Triggered by the table's stream (a dataset created, a sync lock released) and by a
//! schedule whose sweep also polls syncs whose webhook never came.

mod handler;

use std::time::Duration;

use expense_sync::codat::CodatClient;
use expense_sync::store::Store;
use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    let config = expense_sync::aws::sdk_config().await;
    let api_key = expense_sync::secrets::resolve(&config, "CODAT_API_KEY").await?;
    let services = handler::Services {
        store: Store::from_env(&config)?,
        codat: CodatClient::from_env(&api_key, Duration::from_secs(20))?,
        poll_after: match std::env::var("SWEEP_POLL_AFTER_SECONDS") {
            Ok(seconds) => chrono::Duration::seconds(seconds.parse()?),
            Err(_) => expense_sync::flows::sweep::POLL_AFTER,
        },
    };
    run(service_fn(|event| handler::handle(&services, event))).await
}
