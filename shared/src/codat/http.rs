//! The HTTP transport both API versions share: auth header, retries, error bodies.
//! Each version's calls are in `v1/client.rs` and `expenses/client.rs`, the calls whose
//! paths both share in `syncs.rs`.
//!
//! Retries follow the YAML's `x-speakeasy-retries` (408, 429, 5XX and connection errors; backoff
//! from 500 ms, ×1.5, each wait ≤ 60 s) bounded by a caller-chosen budget, and honour
//! `Retry-After`. A call that creates something in Codat is only repeated when the failure
//! proves Codat did not act on it (`408`, `429`, a failed connect), or, for creates of
//! transactions under ids Codat takes once, after a `503` too (a repeat of one that took effect
//! is refused, and that refusal is read as a lost answer). An upload, a transfer's PUT or a v1
//! sync initiation answered `503` is not repeated: it would attach a receipt twice, write a
//! transfer twice, or start a second sync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::{CodatError, ErrorMessage};
use crate::domain::CompanyId;

/// Transactions requested per page; the spec allows up to 5000 (PagingInfo says 2000).
const PAGE_SIZE: u32 = 1000;
/// The longest one attempt may wait for Codat's answer; never longer than the retry budget
/// left, so a call as a whole ends within its budget.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(25);
/// The shortest timeout an attempt gets, even at the end of the budget.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_interval: Duration,
    pub exponent: f64,
    pub max_interval: Duration,
    /// Give up once this much time has gone by; a Lambda sets it below its timeout.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(500),
            exponent: 1.5,
            max_interval: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(20),
        }
    }
}

/// Whether repeating a request can change anything in Codat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    ReadOnly,
    /// Creates transactions under ids Codat holds once per company: a repeat of a create that
    /// took effect is refused, never applied twice, so a `503` may be retried.
    CreatesOnce,
    /// Creates (or, a transfer's PUT, overwrites) with nothing to refuse a repeat: a second
    /// attachment, a second sync, a second write of a transfer. Only answers that prove Codat
    /// did nothing (`408`, `429`, a failed connect) are retried.
    Creates,
}

impl Effect {
    fn creates(self) -> bool {
        self != Effect::ReadOnly
    }
}

pub struct CodatClient {
    pub(crate) http: reqwest::Client,
    base_url: String,
    authorization: HeaderValue,
    retry: RetryPolicy,
    pub(crate) page_size: u32,
    calls: AtomicU64,
}

impl CodatClient {
    /// `api_key` is the key as Codat issues it (already base64 text): sent as `Basic <key>`.
    pub fn new(base_url: &str, api_key: &str, retry: RetryPolicy) -> Result<Self, String> {
        let mut authorization = HeaderValue::from_str(&format!("Basic {}", api_key.trim()))
            .map_err(|_| "the Codat API key holds characters not allowed in a header".to_string())?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("expense-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization,
            retry,
            page_size: PAGE_SIZE,
            calls: AtomicU64::new(0),
        })
    }

    /// Transactions asked for per page when listing a sync's transactions.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, 5000);
        self
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How long one call may keep retrying.
    pub fn retry_budget(&self) -> Duration {
        self.retry.max_elapsed
    }

    /// HTTP requests sent so far, retries included (for the benchmarks).
    pub fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn url(&self, company: CompanyId, rest: &str) -> String {
        format!("{}/companies/{company}/sync/expenses/{rest}", self.base_url)
    }

    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        effect: Effect,
        success: &[StatusCode],
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, CodatError> {
        let started = Instant::now();
        let mut wait = self.retry.initial_interval;
        let mut attempt = 1u32;
        // A create answered 408 or 503 is retried as not applied; should Codat then refuse the
        // retry, that earlier attempt may be what it holds (its id is now "used").
        let mut answered_unavailable: Option<StatusCode> = None;
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let left = self.retry.max_elapsed.saturating_sub(started.elapsed());
            let request = build()
                .header(AUTHORIZATION, self.authorization.clone())
                .timeout(left.clamp(MIN_ATTEMPT_TIMEOUT, ATTEMPT_TIMEOUT));
            let outcome = request.send().await;
            let retry_after = match outcome {
                Ok(response) if success.contains(&response.status()) => {
                    let status = response.status();
                    return response.json::<T>().await.map_err(|e| CodatError::Unavailable {
                        maybe_applied: effect.creates(),
                        detail: format!("unreadable {status} answer: {e}"),
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    tracing::info!(status = status.as_u16(), attempt, effect = ?effect, "Codat answered with an error");
                    match classify(status, effect) {
                        Verdict::Rejected => {
                            let error = error_body(response).await;
                            if let Some(earlier) = answered_unavailable.filter(|_| effect.creates()) {
                                return Err(CodatError::Unavailable {
                                    maybe_applied: true,
                                    detail: format!(
                                        "refused ({status}: {}) after an earlier attempt was answered {earlier}; \
                                         Codat may hold that attempt",
                                        error.summary()
                                    ),
                                });
                            }
                            return Err(CodatError::Rejected { status: status.as_u16(), error });
                        }
                        Verdict::Stop => {
                            let error = error_body(response).await;
                            return Err(CodatError::Unavailable {
                                maybe_applied: true,
                                detail: format!("{status}: {}", error.summary()),
                            });
                        }
                        Verdict::Retry => {
                            if status != StatusCode::TOO_MANY_REQUESTS {
                                answered_unavailable = Some(status);
                            }
                            retry_after(&response)
                        }
                    }
                }
                Err(err) => {
                    // Only a failed connect proves the request never reached Codat.
                    let never_sent = err.is_connect();
                    if effect.creates() && !never_sent {
                        return Err(CodatError::Unavailable { maybe_applied: true, detail: describe(&err) });
                    }
                    tracing::info!(attempt, error = %describe(&err), "Codat unreachable");
                    None
                }
            };
            let delay = retry_after.unwrap_or(wait).min(self.retry.max_interval);
            if started.elapsed() + delay > self.retry.max_elapsed {
                return Err(CodatError::Unavailable {
                    maybe_applied: false,
                    detail: format!("gave up after {attempt} attempts in {:.1?}", started.elapsed()),
                });
            }
            tokio::time::sleep(delay).await;
            wait = wait.mul_f64(self.retry.exponent).min(self.retry.max_interval);
            attempt += 1;
        }
    }
}

enum Verdict {
    Retry,
    Rejected,
    /// Failed in a way that may have taken effect: repeating could duplicate.
    Stop,
}

fn classify(status: StatusCode, effect: Effect) -> Verdict {
    match (status.as_u16(), effect) {
        // Throttled, or timed out reading our request: nothing happened.
        (408 | 429, _) => Verdict::Retry,
        (500..=599, Effect::ReadOnly) => Verdict::Retry,
        // Usually "down for maintenance", but a gateway's 503 can come after Codat acted: only
        // a create Codat would refuse to repeat may be sent again.
        (503, Effect::CreatesOnce) => Verdict::Retry,
        (500..=599, _) => Verdict::Stop,
        _ => Verdict::Rejected,
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

async fn error_body(response: Response) -> ErrorMessage {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<ErrorMessage>(&text).unwrap_or_else(|_| ErrorMessage {
        status_code: Some(i64::from(status.as_u16())),
        error: Some(if text.is_empty() { status.to_string() } else { text.chars().take(500).collect() }),
        ..ErrorMessage::default()
    })
}

fn describe(err: &reqwest::Error) -> String {
    // reqwest's Display includes the URL: ids only, never the key, so it is safe to keep.
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {err}")
}

impl CodatClient {
    /// `CODAT_BASE_URL` (default Codat's production API) and the API key. `retry_budget` bounds
    /// how long one call keeps retrying: keep it under the function's timeout.
    pub fn from_env(api_key: &str, retry_budget: Duration) -> Result<Self, String> {
        let base_url = std::env::var("CODAT_BASE_URL").unwrap_or_else(|_| super::DEFAULT_BASE_URL.to_string());
        Self::new(&base_url, api_key, RetryPolicy { max_elapsed: retry_budget, ..RetryPolicy::default() })
    }
}
