//! A local stand-in for Codat's expenses APIs: Sync for Expenses v1 and, side by side in the
//! same process, the current Expenses API.
//!
//! It implements the endpoints the sync process calls, with the shapes and status codes of
//! `Codat-Sync-Expenses-v1.yaml`, `Codat-Sync-Expenses-current.yaml` and the facts in
//! `NOTES.md`, under `/companies/{companyId}/sync/expenses`:
//!
//! - v1 (`v1.rs`): `POST /data/expense-transactions` (a dataset, 200 `{datasetId}`), then
//!   `POST /syncs` `{datasetIds}` (202 `{syncId}`); the sync runs at once.
//! - current (`expenses.rs`): `POST /expense-transactions` and
//!   `POST /reimbursable-expense-transactions`, a bare array of 1–50 transactions answered 200
//!   `{syncId}`; Codat creates the sync itself and a company's syncs are queued and run one
//!   after another.
//! - current (`transfers.rs`): `PUT /transfer-transactions/{transactionId}` (create or update
//!   one transfer; every accepted PUT is a new sync, and `/_sandbox/stats` counts creates,
//!   resends of the same content and updates per id) and `POST /adjustment-transactions` (a
//!   bare array of 1–50 adjustments), both answered 200 `{syncId}` and queued the same way.
//! - both (`syncs.rs`, `attachments.rs`): `GET /syncs/{syncId}/status`, `/syncs/latest/status`,
//!   `/syncs/lastSuccessful/status`, `/syncs/list/status`, `GET /syncs/{syncId}/transactions`
//!   (paged) and `/syncs/{syncId}/transactions/{transactionId}`, and
//!   `POST /syncs/{syncId}/transactions/{transactionId}/attachments` (refused with a 400 for a
//!   transfer or an adjustment, which take no file; for the current API, also when the
//!   company's linked accounting integration takes no file of that transaction type, size or
//!   file type, per the YAML's integration table).
//! - platform (`connections.rs`): `GET /companies/{companyId}/connections` (paged, `query`
//!   equality/contains clauses, `orderBy`) and `/connections/{connectionId}`; every company
//!   has one linked Xero accounting connection until the admin route
//!   `PUT /_sandbox/companies/{companyId}/connections` (`{platformName, status?, sourceType?,
//!   integrationKey?}` or `{connections: [...]}`) replaces its list.
//!
//! Request bodies are validated (`validate.rs` for the current schemas), a transaction id used
//! before for the company by either API is refused (a transfer's PUT to its own id aside), and
//! each sync finishes after a delay (a transaction is `Completed`, or `ValidationError` when an
//! expense's lines total zero or less, a transfer's two accounts are the same or an amount is
//! not above zero, or an adjustment's lines do not total zero; see `runner.rs`,
//! `transfers.rs`), then a Svix-signed `expenses.sync.*` webhook (or a legacy rule payload) is
//! delivered (`webhooks.rs`). Amounts are read from the body's text into `Decimal`, never
//! through a float, and one a .NET `decimal` cannot hold exactly is refused by field, as are
//! dates outside a .NET `DateTime` (`exact.rs`). Every call is logged, a JSON body also as its
//! exact text (`rawBody`), and readable at `GET /_sandbox/calls`;
//! faults can be injected at `POST /_sandbox/faults` (before the handler, or with
//! `afterEffect` after it, so Codat acts but the answer is lost; `delayMs` slows the answer),
//! webhooks lost at `POST /_sandbox/drop-webhooks`, and transactions left out of listings at
//! `POST /_sandbox/unreported` (`admin.rs`). It is written independently of the
//! `expense-sync` crate, so the two readings of the spec check each other.

mod admin;
mod attachments;
mod connections;
mod errors;
mod exact;
mod expenses;
mod middleware;
mod runner;
mod state;
mod syncs;
mod transfers;
mod v1;
mod validate;
mod webhooks;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use state::{AttachmentLog, Call};

/// How the sandbox tells the application that a sync finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookMode {
    /// `expenses.sync.successful` / `.unsuccessful`, Svix-signed with the `whsec_` secret.
    Svix { secret: String },
    /// `Sync Completed` / `Sync Failed` rule payloads with a static `Authorization` value.
    Legacy { authorization: String },
    /// No webhooks: the application has to poll.
    Off,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The API key clients must send as `Authorization: Basic <key>`.
    pub api_key: String,
    /// Where webhooks are POSTed; `None` sends none.
    pub webhook_url: Option<String>,
    pub webhook_mode: WebhookMode,
    /// How long a sync takes to finish after it is initiated.
    pub sync_delay: Duration,
}

impl Config {
    pub fn for_tests(api_key: &str) -> Self {
        Self {
            api_key: api_key.into(),
            webhook_url: None,
            webhook_mode: WebhookMode::Off,
            sync_delay: Duration::from_millis(50),
        }
    }
}

pub fn router(config: Config) -> axum::Router {
    let shared = Arc::new(state::Shared::new(config));
    v1::routes(shared.clone())
        .merge(expenses::routes(shared.clone()))
        .merge(transfers::routes(shared.clone()))
        .merge(syncs::routes(shared.clone()))
        .merge(attachments::routes(shared.clone()))
        .merge(connections::routes(shared.clone()))
        .merge(admin::routes(shared.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(middleware::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(shared, middleware::track))
}

/// Serves on `addr` until the process ends.
pub async fn serve(config: Config, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "Codat sandbox listening");
    axum::serve(listener, router(config)).await
}

/// Starts a sandbox on a free loopback port in this process; returns its base URL.
pub async fn spawn(config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router(config)).await });
    format!("http://{addr}")
}
