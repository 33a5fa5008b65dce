//! Codat Sync for Expenses v1 (in maintenance since 2026-05-01, switched off 2027-05-01):
//! transactions go into a dataset, and a sync of the pending datasets is initiated separately.

#[cfg(feature = "codat")]
mod client;
mod map;
mod models;

#[cfg(feature = "codat")]
pub use client::V1;
pub use map::INTAKE;
pub use models::*;
