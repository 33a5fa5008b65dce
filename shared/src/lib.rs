//! Shared core of expense-sync.
//!
//! * [`domain`]: the expense life-cycle and approval validation, free of Lambda and AWS types.
//! * [`codat`]: the Sync for Expenses v1 models and (feature `codat`) the HTTP client.
//! * [`store`] (feature `store`): DynamoDB persistence, one conditional write per transition.
//! * [`receipts`] (feature `receipts`): receipt bytes in S3.
//! * [`webhook`] (feature `webhooks`): signature checks and payload parsing for Codat webhooks.
//! * [`flows`]: the steps of the sync process, each wiring the pieces above together.

pub mod alert;
pub mod codat;
pub mod domain;
#[cfg(feature = "http-edge")]
pub mod edge;
pub mod json;

#[cfg(any(feature = "store", feature = "receipts"))]
pub mod aws;
#[cfg(all(feature = "codat", feature = "store"))]
pub mod flows;
#[cfg(feature = "receipts")]
pub mod receipts;
#[cfg(any(feature = "store", feature = "receipts"))]
pub mod secrets;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "webhooks")]
pub mod webhook;

/// Reads a required environment variable, naming it in the error.
pub fn required_env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}
