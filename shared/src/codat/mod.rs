//! Codat Sync for Expenses v1: models named exactly as `Codat-Sync-Expenses-v1.yaml` names them,
//! and (feature `codat`) a client for the calls the sync process makes.

#[cfg(feature = "codat")]
mod client;
mod models;

#[cfg(feature = "codat")]
pub use client::{CodatClient, CodatError, RetryPolicy};
pub use models::*;

/// Codat's production API, the default `CODAT_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.codat.io";
