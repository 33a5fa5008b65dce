//! Codat's two expense APIs side by side. What both share (the transport, errors, sync status,
//! transactions, attachments, webhooks) is at this level; each version's own calls and models,
//! named exactly as its YAML names them, are in `v1/` and `expenses/`, with a `map.rs` that
//! turns our transactions into its wire models and declares what it accepts at intake.
//!
//! Flows speak in domain terms through [`CodatClient::create`]; which API a call goes to is
//! the `api` recorded on the expense or sync, so a deployment switching APIs finishes its old
//! syncs on the old one.

mod connections;
mod error;
pub mod expenses;
#[cfg(feature = "codat")]
mod http;
mod syncs;
pub mod v1;
mod webhooks;

pub use connections::{attaches, Attaches, Connection, Connections};
pub use error::{CodatError, ErrorMessage, ErrorValidation, ErrorValidationItem};
#[cfg(feature = "codat")]
pub use http::{CodatClient, RetryPolicy};
pub use syncs::{Attachment, CompanySyncStatus, IntegrationType, Transaction, TransactionStatus, Transactions};
pub use webhooks::*;

use crate::domain::{CodatApi, IntakeRules};

/// Codat's production API, the default `CODAT_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.codat.io";

/// What `api` accepts at intake.
pub fn intake_rules(api: CodatApi) -> &'static IntakeRules {
    match api {
        CodatApi::Expenses => &expenses::INTAKE,
        CodatApi::V1 => &v1::INTAKE,
    }
}

/// `CODAT_API` (default `expenses`): the API new approvals are created with.
pub fn api_from_env() -> Result<CodatApi, String> {
    match std::env::var("CODAT_API") {
        Ok(value) if !value.trim().is_empty() => value.parse(),
        _ => Ok(CodatApi::default()),
    }
}

#[cfg(feature = "codat")]
mod port {
    use super::*;
    use crate::domain::{CompanyId, Created, Entry};

    impl CodatClient {
        pub fn v1(&self) -> v1::V1<'_> {
            v1::V1(self)
        }

        pub fn expenses(&self) -> expenses::Expenses<'_> {
            expenses::Expenses(self)
        }

        /// Creates entries of one kind with `api` (1 to 50; a transfer alone): a v1 dataset, or
        /// a sync Codat queued itself.
        pub async fn create(
            &self,
            api: CodatApi,
            company: CompanyId,
            entries: &[&Entry],
        ) -> Result<Created, CodatError> {
            match api {
                CodatApi::V1 => {
                    // v1 intake takes expense transactions only.
                    let transactions: Vec<_> = entries.iter().filter_map(|e| e.as_transaction()).collect();
                    debug_assert_eq!(transactions.len(), entries.len(), "v1 stores transactions only");
                    self.v1().create_expense_dataset(company, &transactions).await.map(Created::Dataset)
                }
                CodatApi::Expenses => self.expenses().create(company, entries).await.map(Created::Sync),
            }
        }
    }
}
