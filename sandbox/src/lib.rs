//! A local stand-in for Codat's Sync for Expenses v1 API.
//!
//! It implements the endpoints the sync process calls, with the shapes and status codes of
//! `Codat-Sync-Expenses-v1.yaml` and the facts in `NOTES.md`: it validates request bodies,
//! refuses a transaction id used before, answers initiate-sync with 202 `{syncId}`, runs each
//! sync after a delay (a transaction is `Completed`, or `ValidationError` when its lines total
//! zero or less), then delivers a Svix-signed `expenses.sync.*` webhook (or a legacy rule
//! payload). Every call is logged and readable at `GET /_sandbox/calls`; faults can be
//! injected at `POST /_sandbox/faults`, webhooks lost at `POST /_sandbox/drop-webhooks`, and
//! transactions left out of listings at `POST /_sandbox/unreported`. It is written independently of the `expense-sync`
//! crate, so the two readings of the spec check each other.

mod admin;
mod api;
mod state;
mod webhooks;

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
    api::routes(shared.clone())
        .merge(admin::routes(shared.clone()))
        .layer(axum::middleware::from_fn_with_state(shared, api::track))
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
