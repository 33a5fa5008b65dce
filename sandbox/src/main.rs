//! `codat-sandbox`: run the local Codat stand-in, serving Sync for Expenses v1 and the current
//! Expenses API side by side on one address. Configuration from the environment:
//! `SANDBOX_ADDR` (default 127.0.0.1:4010), `CODAT_API_KEY`, `SANDBOX_WEBHOOK_URL`,
//! `CODAT_WEBHOOK_SECRET` (`whsec_...`, for Svix-signed events) or
//! `SANDBOX_LEGACY_AUTHORIZATION` (legacy rule payloads), `SANDBOX_SYNC_DELAY_MS` (default 1500).

use std::time::Duration;

use codat_sandbox::{Config, WebhookMode};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let addr = env("SANDBOX_ADDR").unwrap_or_else(|| "127.0.0.1:4010".into());
    let webhook_mode = match (env("CODAT_WEBHOOK_SECRET"), env("SANDBOX_LEGACY_AUTHORIZATION")) {
        (_, Some(authorization)) => WebhookMode::Legacy { authorization },
        (Some(secret), None) => WebhookMode::Svix { secret },
        (None, None) => WebhookMode::Off,
    };
    let config = Config {
        api_key: env("CODAT_API_KEY").unwrap_or_else(|| "sandbox-api-key".into()),
        webhook_url: env("SANDBOX_WEBHOOK_URL"),
        webhook_mode,
        sync_delay: Duration::from_millis(env("SANDBOX_SYNC_DELAY_MS").and_then(|v| v.parse().ok()).unwrap_or(1500)),
    };
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("SANDBOX_ADDR: {e}")))?;
    codat_sandbox::serve(config, addr).await
}
