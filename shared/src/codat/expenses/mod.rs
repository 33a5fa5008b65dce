//! Codat's current Expenses API: a create answers the id of the sync Codat queued for it.
//! Card expenses and reimbursable expenses have an endpoint each.

#[cfg(feature = "codat")]
mod client;
mod map;
mod models;

#[cfg(feature = "codat")]
pub use client::Expenses;
pub use map::INTAKE;
pub use models::*;
