//! Codat webhook deliveries: authenticate the raw bytes first, then parse.
//!
//! * `expenses.sync.successful` / `expenses.sync.unsuccessful` are signed with Svix
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature`); checked by the `svix` crate,
//!   which also rejects timestamps more than five minutes off.
//! * The legacy `Sync Completed` / `Sync Failed` rules carry a static `Authorization` value.

use sha2::{Digest, Sha256};

use crate::codat::{ExpensesSyncWebhook, LegacySyncWebhook};
use crate::domain::{CompanyId, SyncId};
use crate::json::{self, Object};

pub const EVENT_SYNC_SUCCESSFUL: &str = "expenses.sync.successful";
pub const EVENT_SYNC_UNSUCCESSFUL: &str = "expenses.sync.unsuccessful";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Not from Codat (or not verifiable): 401, never processed.
    #[error("unauthenticated webhook: {0}")]
    Unauthenticated(String),
    /// Authentic but unreadable: 400 naming the field.
    #[error("{field}: {message}")]
    Malformed { field: String, message: String },
}

pub use crate::domain::SyncNotice;

/// An authenticated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across Codat's redeliveries of the same event: the de-duplication key.
    pub id: String,
    pub event_type: String,
    /// `None` for event types this service does not act on.
    pub notice: Option<SyncNotice>,
}

pub struct WebhookVerifier {
    svix: Option<svix::webhooks::Webhook>,
    legacy_authorization: Option<String>,
}

impl WebhookVerifier {
    /// `signing_secret` is the Svix `whsec_...` secret; `legacy_authorization` the value Codat
    /// sends in `Authorization` for legacy rules. At least one is needed.
    pub fn new(signing_secret: Option<&str>, legacy_authorization: Option<&str>) -> Result<Self, String> {
        let svix = signing_secret
            .filter(|s| !s.trim().is_empty())
            .map(|secret| svix::webhooks::Webhook::new(secret.trim()))
            .transpose()
            .map_err(|_| "the webhook signing secret is not a valid whsec_ secret".to_string())?;
        let legacy_authorization = legacy_authorization.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        if svix.is_none() && legacy_authorization.is_none() {
            return Err("no webhook signing secret or legacy authorization value is configured".into());
        }
        Ok(Self { svix, legacy_authorization })
    }

    /// Authenticates and parses one delivery.
    pub fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        // The id the signature covers, in the `svix` verifier's own order (`svix-id` first):
        // de-duplicating on any other header would let an unsigned id make a replay look new.
        if let Some(signed_id) = header("svix-id").or_else(|| header("webhook-id")) {
            let svix = self
                .svix
                .as_ref()
                .ok_or_else(|| WebhookError::Unauthenticated("signed webhooks are not configured".into()))?;
            svix.verify(body, headers)
                .map_err(|e| WebhookError::Unauthenticated(format!("signature check failed: {e}")))?;
            return parse_current(signed_id, body);
        }
        let expected = self
            .legacy_authorization
            .as_deref()
            .ok_or_else(|| WebhookError::Unauthenticated("missing webhook-id / webhook-signature headers".into()))?;
        let given = header("authorization").unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(WebhookError::Unauthenticated("Authorization header does not match".into()));
        }
        parse_legacy(body)
    }
}

fn malformed(field: &str, message: impl Into<String>) -> WebhookError {
    WebhookError::Malformed { field: field.into(), message: message.into() }
}

/// Just the field that says what an event is; the rest is read once the type is known.
#[derive(serde::Deserialize)]
struct EventHead {
    #[serde(rename = "eventType", default)]
    event_type: Option<String>,
    #[serde(rename = "RuleType", default)]
    rule_type: Option<String>,
    #[serde(rename = "AlertId", default)]
    alert_id: Option<String>,
}

/// Parses the whole body strictly (one JSON object, objects where objects belong), naming the
/// JSON path of whatever is wrong. Unknown fields are Codat's to add, so they are let be.
fn parse_body<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, WebhookError> {
    json::parse::<Object<T>>(body).map(Object::into_inner).map_err(|e| malformed(&e.field, e.message))
}

fn canonical<T>(value: &str, field: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, WebhookError> {
    parse(value).ok_or_else(|| malformed(field, "must be a canonical UUID (lowercase, hyphenated)"))
}

fn parse_current(delivery_id: &str, body: &[u8]) -> Result<Delivery, WebhookError> {
    let head: EventHead = parse_body(body)?;
    let event_type = head.event_type.ok_or_else(|| malformed("eventType", "is required"))?;
    if event_type != EVENT_SYNC_SUCCESSFUL && event_type != EVENT_SYNC_UNSUCCESSFUL {
        return Ok(Delivery { id: delivery_id.into(), event_type, notice: None });
    }
    let event: ExpensesSyncWebhook = parse_body(body)?;
    let company = &event.payload.reference_company.id;
    let company_id = canonical(company, "payload.referenceCompany.id", CompanyId::parse_canonical)?;
    let sync_id = canonical(&event.payload.sync_id, "payload.syncId", SyncId::parse_canonical)?;
    Ok(Delivery {
        id: delivery_id.into(),
        notice: Some(SyncNotice { company_id, sync_id, successful: event_type == EVENT_SYNC_SUCCESSFUL }),
        event_type,
    })
}

fn parse_legacy(body: &[u8]) -> Result<Delivery, WebhookError> {
    let head: EventHead = parse_body(body)?;
    let rule_type = head.rule_type.ok_or_else(|| malformed("RuleType", "is required"))?;
    // Legacy deliveries carry no delivery id header: AlertId identifies the event.
    let id =
        head.alert_id.map(|a| format!("alert-{a}")).unwrap_or_else(|| format!("body-{}", hex(&Sha256::digest(body))));
    if rule_type != "Sync Completed" && rule_type != "Sync Failed" {
        return Ok(Delivery { id, event_type: rule_type, notice: None });
    }
    let event: LegacySyncWebhook = parse_body(body)?;
    let company_id = canonical(&event.company_id, "CompanyId", CompanyId::parse_canonical)?;
    let sync_id = canonical(&event.data.sync_id, "Data.syncId", SyncId::parse_canonical)?;
    Ok(Delivery {
        id,
        notice: Some(SyncNotice { company_id, sync_id, successful: rule_type == "Sync Completed" }),
        event_type: rule_type,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const COMPANY: &str = "1f9559e7-8368-48c9-bdf4-f158e16b8b85";
    const SYNC: &str = "321363b4-efa9-4fbc-b71c-0b58d62f3248";

    fn current_body(event_type: &str) -> Vec<u8> {
        serde_json::json!({
            "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
            "eventType": event_type,
            "generatedDate": "2024-09-01T00:00:00Z",
            "payload": {"referenceCompany": {"id": COMPANY, "name": "Toft"}, "syncId": SYNC,
                        "transactions": [{"id": "4d7c6929-7770-412b-91bb-44d3bc71d111", "status": "Completed"}]}
        })
        .to_string()
        .into_bytes()
    }

    fn signed(body: &[u8], timestamp: i64) -> HeaderMap {
        let signer = svix::webhooks::Webhook::new(SECRET).unwrap();
        let signature = signer.sign("msg_1", timestamp, body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
        headers.insert("webhook-timestamp", HeaderValue::from_str(&timestamp.to_string()).unwrap());
        headers.insert("webhook-signature", HeaderValue::from_str(&signature).unwrap());
        headers
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(Some(SECRET), Some("Bearer legacy-secret")).unwrap()
    }

    #[test]
    fn svix_signature_from_the_standard_webhooks_test_vector() {
        // The signature every Svix library tests against.
        let signer = svix::webhooks::Webhook::new(SECRET).unwrap();
        let sig = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signed_current_event_is_accepted() {
        let body = current_body(EVENT_SYNC_UNSUCCESSFUL);
        let delivery = verifier().verify(&signed(&body, chrono::Utc::now().timestamp()), &body).unwrap();
        assert_eq!(delivery.id, "msg_1");
        let notice = delivery.notice.unwrap();
        assert_eq!(notice.sync_id.to_string(), SYNC);
        assert_eq!(notice.company_id.to_string(), COMPANY);
        assert!(!notice.successful);
    }

    #[test]
    fn the_delivery_id_is_the_one_the_signature_covers() {
        // Signed with svix-* headers, replayed with an extra, unsigned webhook-id.
        let body = current_body(EVENT_SYNC_SUCCESSFUL);
        let now = chrono::Utc::now().timestamp();
        let signature = svix::webhooks::Webhook::new(SECRET).unwrap().sign("msg_signed", now, &body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", HeaderValue::from_static("msg_signed"));
        headers.insert("svix-timestamp", HeaderValue::from_str(&now.to_string()).unwrap());
        headers.insert("svix-signature", HeaderValue::from_str(&signature).unwrap());
        headers.insert("webhook-id", HeaderValue::from_static("msg_fresh_looking"));
        let delivery = verifier().verify(&headers, &body).unwrap();
        assert_eq!(delivery.id, "msg_signed");
    }

    #[test]
    fn tampered_stale_or_unsigned_deliveries_are_refused() {
        let body = current_body(EVENT_SYNC_SUCCESSFUL);
        let now = chrono::Utc::now().timestamp();
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert!(matches!(verifier().verify(&signed(&body, now), &tampered), Err(WebhookError::Unauthenticated(_))));
        assert!(matches!(verifier().verify(&signed(&body, now - 301), &body), Err(WebhookError::Unauthenticated(_))));
        let legacy_only = WebhookVerifier::new(None, Some("x")).unwrap();
        assert!(matches!(legacy_only.verify(&signed(&body, now), &body), Err(WebhookError::Unauthenticated(_))));
        assert!(matches!(verifier().verify(&HeaderMap::new(), &body), Err(WebhookError::Unauthenticated(_))));
    }

    #[test]
    fn other_event_types_are_authenticated_but_carry_no_notice() {
        let body = current_body("expenses.something.else");
        let delivery = verifier().verify(&signed(&body, chrono::Utc::now().timestamp()), &body).unwrap();
        assert_eq!(delivery.notice, None);
    }

    #[test]
    fn legacy_rules_use_the_static_authorization_value() {
        let body = serde_json::json!({
            "ClientId": "30e0f9d2-52c0-4c9f-a806-bcd98a3bcd7e", "ClientName": "Expense Sync",
            "CompanyId": COMPANY, "RuleId": "289c80dc-2aee-4b71-afff-9acd8d051080", "RuleType": "Sync Failed",
            "AlertId": "72c1103b-7f17-4a3a-8db5-67c2d360a516", "Message": "failed",
            "Data": {"syncId": SYNC, "syncType": "Expense", "FailureStage": "Pushing"}
        })
        .to_string();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer legacy-secret"));
        let delivery = verifier().verify(&headers, body.as_bytes()).unwrap();
        assert_eq!(delivery.id, "alert-72c1103b-7f17-4a3a-8db5-67c2d360a516");
        assert!(!delivery.notice.unwrap().successful);
        headers.insert("authorization", HeaderValue::from_static("Bearer wrong"));
        assert!(verifier().verify(&headers, body.as_bytes()).is_err());
    }

    #[test]
    fn authentic_but_malformed_names_the_field() {
        let body = serde_json::json!({"eventType": EVENT_SYNC_SUCCESSFUL,
            "payload": {"referenceCompany": {"id": "nope"}, "syncId": SYNC}})
        .to_string()
        .into_bytes();
        let err = verifier().verify(&signed(&body, chrono::Utc::now().timestamp()), &body).unwrap_err();
        assert_eq!(
            err,
            WebhookError::Malformed {
                field: "payload.referenceCompany.id".into(),
                message: "must be a canonical UUID (lowercase, hyphenated)".into()
            }
        );
    }

    fn field_of_malformed(body: serde_json::Value) -> String {
        let body = body.to_string().into_bytes();
        match verifier().verify(&signed(&body, chrono::Utc::now().timestamp()), &body) {
            Err(WebhookError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed delivery, got {other:?}"),
        }
    }

    #[test]
    fn arrays_non_canonical_ids_and_trailing_data_are_malformed() {
        let company = serde_json::json!({"id": COMPANY});
        let event =
            |payload: serde_json::Value| serde_json::json!({"eventType": EVENT_SYNC_SUCCESSFUL, "payload": payload});
        assert_eq!(field_of_malformed(event(serde_json::json!([company, SYNC]))), "payload");
        assert_eq!(
            field_of_malformed(event(serde_json::json!({"referenceCompany": [COMPANY], "syncId": SYNC}))),
            "payload.referenceCompany"
        );
        assert_eq!(
            field_of_malformed(event(serde_json::json!({"referenceCompany": company, "syncId": SYNC.to_uppercase()}))),
            "payload.syncId"
        );
        assert_eq!(
            field_of_malformed(event(
                serde_json::json!({"referenceCompany": company, "syncId": SYNC, "transactions": [["x"]]})
            )),
            "payload.transactions[0]"
        );
        assert_eq!(field_of_malformed(serde_json::json!([EVENT_SYNC_SUCCESSFUL])), "body");
        let mut body = current_body(EVENT_SYNC_SUCCESSFUL);
        body.extend_from_slice(b" {}");
        let err = verifier().verify(&signed(&body, chrono::Utc::now().timestamp()), &body).unwrap_err();
        assert!(matches!(err, WebhookError::Malformed { ref field, .. } if field == "body"), "{err:?}");
    }

    #[test]
    fn svix_tolerance_is_five_minutes_either_way() {
        // Five seconds either side of the edge, so the test does not race the clock.
        let body = current_body(EVENT_SYNC_SUCCESSFUL);
        let now = chrono::Utc::now().timestamp();
        for inside in [now - 295, now + 295] {
            assert!(verifier().verify(&signed(&body, inside), &body).is_ok(), "{}", inside - now);
        }
        for outside in [now - 305, now + 305] {
            let refused = verifier().verify(&signed(&body, outside), &body);
            assert!(matches!(refused, Err(WebhookError::Unauthenticated(_))), "{}", outside - now);
        }
    }
}
