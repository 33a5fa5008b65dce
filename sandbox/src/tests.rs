//! The sandbox through its router: both APIs, the shared sync endpoints and the admin steering.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

use crate::{router, Config};

const KEY: &str = "test-key";
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/codat/Codat-Sync-Expenses-current.yaml");

struct Sandbox {
    app: Router,
}

impl Sandbox {
    fn new(sync_delay_ms: u64) -> Self {
        let config = Config { sync_delay: Duration::from_millis(sync_delay_ms), ..Config::for_tests(KEY) };
        Self { app: router(config) }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {KEY}"))
            .header(header::CONTENT_TYPE, "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(request.body(body).expect("request")).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Posts JSON text as written: amounts a `Value` would round reach the sandbox intact.
    async fn post_text(&self, path: &str, text: &str) -> (StatusCode, Value) {
        self.send_text(Method::POST, path, text).await
    }

    async fn put_text(&self, path: &str, text: &str) -> (StatusCode, Value) {
        self.send_text(Method::PUT, path, text).await
    }

    async fn send_text(&self, method: Method, path: &str, text: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {KEY}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text.to_string()))
            .expect("request");
        self.send(request).await
    }

    async fn calls(&self) -> Vec<Value> {
        self.get("/_sandbox/calls").await.1.as_array().cloned().unwrap_or_default()
    }

    async fn upload(&self, path: &str) -> (StatusCode, Value) {
        self.upload_file(path, "receipt.pdf", "application/pdf", b"%PDF-1.4 receipt".to_vec()).await
    }

    async fn upload_file(
        &self,
        path: &str,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let boundary = "sandbox-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend(bytes);
        body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {KEY}"))
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }

    async fn stats(&self, company: &str) -> Value {
        self.get("/_sandbox/stats").await.1["companies"][company].clone()
    }

    /// Polls the sync's status until it is finished (code 2000 or more).
    async fn wait_for(&self, company: &str, sync_id: &str) -> Value {
        for _ in 0..200 {
            let (status, body) = self.get(&format!("{}/syncs/{sync_id}/status", base(company))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["syncStatusCode"].as_i64().unwrap_or(0) >= 2000 {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sync {sync_id} did not finish");
    }
}

fn base(company: &str) -> String {
    format!("/companies/{company}/sync/expenses")
}

fn company() -> String {
    Uuid::new_v4().to_string()
}

fn expense(id: &str) -> Value {
    json!({
        "id": id, "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
        "contactRef": {"id": "430", "type": "Supplier"}, "bankAccountRef": {"id": "97"},
        "lines": [{"netAmount": 100, "taxAmount": 20, "accountRef": {"id": "35"}}],
    })
}

fn errors_text(body: &Value) -> String {
    body["validation"]["errors"].to_string()
}

/// The request examples of a path's operation (`post`, `put`), from the YAML contract.
fn spec_examples(path: &str, method: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(SPEC).expect("read the current spec");
    let spec: Value = serde_norway::from_str(&text).expect("parse the current spec");
    let examples = &spec["paths"][path][method]["requestBody"]["content"]["application/json"]["examples"];
    let examples = examples.as_object().expect("request examples");
    examples.iter().map(|(name, e)| (name.clone(), e["value"].clone())).collect()
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A sandbox sending Svix-signed webhooks to a local receiver, and what that receiver got.
async fn with_webhooks() -> (Sandbox, Received) {
    let received: Received = Default::default();
    let sink = received.clone();
    let receiver = Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move { sink.lock().expect("lock").push((headers, body)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let config = Config {
        webhook_url: Some(hook),
        webhook_mode: crate::WebhookMode::Svix { secret: WEBHOOK_SECRET.into() },
        ..Config::for_tests(KEY)
    };
    (Sandbox { app: router(config) }, received)
}

/// Waits until `count` webhooks arrived; returns each as verified JSON, by sync id.
async fn webhooks(received: &Received, count: usize) -> std::collections::HashMap<String, Value> {
    for _ in 0..200 {
        if received.lock().expect("lock").len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = received.lock().expect("lock").clone();
    assert_eq!(received.len(), count, "webhooks received");
    let signer = svix::webhooks::Webhook::new(WEBHOOK_SECRET).expect("secret");
    received
        .iter()
        .map(|(headers, body)| {
            signer.verify(body, headers).expect("a valid Svix signature");
            let event: Value = serde_json::from_slice(body).expect("json");
            (event["payload"]["syncId"].as_str().expect("syncId").to_string(), event)
        })
        .collect()
}

#[tokio::test]
async fn the_specs_request_examples_are_accepted() {
    let sandbox = Sandbox::new(10);
    for (path, endpoint, expected) in [
        ("/companies/{companyId}/sync/expenses/expense-transactions", "expense-transactions", 2),
        (
            "/companies/{companyId}/sync/expenses/reimbursable-expense-transactions",
            "reimbursable-expense-transactions",
            1,
        ),
    ] {
        let examples = spec_examples(path, "post");
        assert_eq!(examples.len(), expected, "{path}");
        for (name, body) in examples {
            assert!(body.is_array(), "{name} is a bare array");
            // The examples share transaction ids: one company each.
            let company = company();
            let (status, answer) = sandbox.post(&format!("{}/{endpoint}", base(&company)), body).await;
            assert_eq!(status, StatusCode::OK, "{name}: {answer}");
            let sync_id = answer["syncId"].as_str().expect("syncId");
            assert!(Uuid::parse_str(sync_id).is_ok());
            assert_eq!(sandbox.wait_for(&company, sync_id).await["syncStatusCode"], 2000, "{name}");
        }
    }
}

#[tokio::test]
async fn transfer_and_adjustment_types_are_refused() {
    let sandbox = Sandbox::new(10);
    let company = company();
    for kind in ["TransferIn", "TransferOut", "AdjustmentIn", "AdjustmentOut", "Bogus"] {
        let mut txn = expense(&Uuid::new_v4().to_string());
        txn["type"] = json!(kind);
        let (status, body) = sandbox.post(&format!("{}/expense-transactions", base(&company)), json!([txn])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(body["statusCode"], 400);
        assert!(errors_text(&body).contains("type must be one of Payment, Refund, Reward, Chargeback"), "{body}");
    }
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");
}

#[tokio::test]
async fn v1_contact_type_and_unknown_properties_are_refused() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let url = format!("{}/expense-transactions", base(&company));
    let mut txn = expense(&Uuid::new_v4().to_string());
    txn["contactRef"] = json!({"id": "430", "contactType": "Supplier"});
    let (status, body) = sandbox.post(&url, json!([txn])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&body).contains("contactType is not a property of ExpenseContactRef"), "{body}");

    let mut txn = expense(&Uuid::new_v4().to_string());
    txn["colour"] = json!("blue");
    txn["lines"][0]["trackingRefs"] = json!([{"id": "DEPT", "dataType": "projects"}]);
    let (status, body) = sandbox.post(&url, json!([txn])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = errors_text(&body);
    assert!(text.contains("colour is not a property of ExpenseTransaction"), "{text}");
    assert!(
        text.contains("[0].lines[0].trackingRefs[0].dataType must be one of trackingCategories, customers"),
        "{text}"
    );

    for bad in [json!([]), json!({"items": [expense(&Uuid::new_v4().to_string())]}), json!([1])] {
        let (status, body) = sandbox.post(&url, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let many: Vec<Value> = (0..51).map(|_| expense(&Uuid::new_v4().to_string())).collect();
    assert_eq!(sandbox.post(&url, json!(many)).await.0, StatusCode::BAD_REQUEST);

    // Dates may be plain dates; nullable fields may be null.
    let mut txn = expense(&Uuid::new_v4().to_string());
    txn["issueDate"] = json!("2022-10-23");
    txn["currencyRate"] = Value::Null;
    txn["reference"] = Value::Null;
    txn["postAsDraft"] = Value::Null;
    txn["lines"][0]["trackingRefs"] = Value::Null;
    txn["lines"][0]["taxAmount"] = json!(0);
    let (status, body) = sandbox.post(&url, json!([txn])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut txn = expense(&Uuid::new_v4().to_string());
    txn["issueDate"] = json!("23/10/2022");
    let (status, body) = sandbox.post(&url, json!([txn])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&body).contains("issueDate must be a date-time"), "{body}");
}

#[tokio::test]
async fn reimbursables_need_contact_and_due_date() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let url = format!("{}/reimbursable-expense-transactions", base(&company));
    let txn = json!({"id": Uuid::new_v4(), "issueDate": "2024-05-21", "currency": "GBP",
                     "lines": [{"description": "Hotel", "netAmount": 100}]});
    let (status, body) = sandbox.post(&url, json!([txn])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = errors_text(&body);
    assert!(text.contains("contactRef is required") && text.contains("dueDate is required"), "{text}");
}

#[tokio::test]
async fn a_transaction_id_is_used_once_per_company_across_both_apis() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let id = Uuid::new_v4().to_string();
    let mut v1_item = expense(&id);
    v1_item["contactRef"] = json!({"id": "430", "contactType": "Supplier"});
    v1_item.as_object_mut().expect("object").remove("bankAccountRef");
    let (status, body) =
        sandbox.post(&format!("{}/data/expense-transactions", base(&company)), json!({"items": [v1_item]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let current = format!("{}/expense-transactions", base(&company));
    let (status, body) = sandbox.post(&current, json!([expense(&id.to_uppercase())])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&body).contains("has already been used"), "{body}");

    let other = Uuid::new_v4().to_string();
    let (status, _) = sandbox.post(&current, json!([expense(&other), expense(&other)])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "twice in one request");
    assert_eq!(sandbox.post(&current, json!([expense(&other)])).await.0, StatusCode::OK);
    let reimbursable = json!([{"id": other, "contactRef": {"id": "752"}, "issueDate": "2024-05-21",
                               "dueDate": "2024-05-21", "currency": "GBP", "lines": [{"netAmount": 1}]}]);
    let url = format!("{}/reimbursable-expense-transactions", base(&company));
    assert_eq!(sandbox.post(&url, reimbursable).await.0, StatusCode::BAD_REQUEST);
    let mut v1_item = expense(&other);
    v1_item.as_object_mut().expect("object").remove("bankAccountRef");
    v1_item["contactRef"] = json!({"id": "430"});
    let (status, _) =
        sandbox.post(&format!("{}/data/expense-transactions", base(&company)), json!({"items": [v1_item]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "v1 refuses an id the current API used");

    let stats = sandbox.stats(&company).await;
    assert_eq!(stats["transactions"], 2);
    assert_eq!(stats["createCalls"], 2);
}

#[tokio::test]
async fn a_sync_lists_pending_then_completed_and_accepts_attachments() {
    let sandbox = Sandbox::new(300);
    let company = company();
    let ids = [Uuid::new_v4().to_string(), Uuid::new_v4().to_string()];
    let mut failing = expense(&ids[1]);
    failing["lines"] = json!([{"netAmount": -10, "taxAmount": 2}, {"netAmount": 5}]);
    let (status, body) =
        sandbox.post(&format!("{}/expense-transactions", base(&company)), json!([expense(&ids[0]), failing])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync_id = body["syncId"].as_str().expect("syncId").to_string();
    let sync = format!("{}/syncs/{sync_id}", base(&company));

    let (status, listing) = sandbox.get(&format!("{sync}/transactions?page=1&pageSize=100")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["totalResults"], 2);
    assert!(listing["results"].as_array().expect("results").iter().all(|r| r["status"] == "Pending"), "{listing}");
    let (_, running) = sandbox.get(&format!("{sync}/status")).await;
    assert!((1000..2000).contains(&running["syncStatusCode"].as_i64().expect("code")), "{running}");
    assert_eq!(running["dataPushed"], false);

    let done = sandbox.wait_for(&company, &sync_id).await;
    assert_eq!(done["syncStatusCode"], 2000, "one of two failed: still Complete");
    assert_eq!(done["dataPushed"], true);
    assert!(done["syncUtc"].is_string());

    let (_, listing) = sandbox.get(&format!("{sync}/transactions?pageSize=1&page=2")).await;
    assert_eq!(listing["pageNumber"], 2);
    assert_eq!(listing["results"].as_array().map(Vec::len), Some(1));
    assert!(listing["_links"]["previous"]["href"].is_string());
    for (id, expected) in [(&ids[0], "Completed"), (&ids[1], "ValidationError")] {
        let (status, one) = sandbox.get(&format!("{sync}/transactions/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one[0]["transactionId"], json!(id));
        assert_eq!(one[0]["status"], expected, "{one}");
        assert_eq!(one[0]["integrationType"], "expenses");
    }
    let (_, failed) = sandbox.get(&format!("{sync}/transactions/{}", ids[1])).await;
    assert!(failed[0]["message"].as_str().expect("message").contains("line item total -3.00"), "{failed}");
    let (status, _) = sandbox.get(&format!("{sync}/transactions/{}", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["page=0", "pageSize=5001", "pageSize=x"] {
        let (status, body) = sandbox.get(&format!("{sync}/transactions?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].as_str().expect("error").starts_with("Error parsing query"), "{body}");
    }

    let (status, attachment) = sandbox.upload(&format!("{sync}/transactions/{}/attachments", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{attachment}");
    assert_eq!(attachment["transactionId"], json!(ids[0]));
    assert_eq!(attachment["companyId"], json!(company));
    assert_eq!(sandbox.stats(&company).await["attachments"], 1);
}

#[tokio::test]
async fn list_latest_and_last_successful_status() {
    let sandbox = Sandbox::new(10);
    let company = company();
    for path in ["latest", "lastSuccessful"] {
        let (status, body) = sandbox.get(&format!("{}/syncs/{path}/status", base(&company))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["statusCode"], 404);
    }
    let (status, list) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));

    let url = format!("{}/expense-transactions", base(&company));
    let (_, first) = sandbox.post(&url, json!([expense(&Uuid::new_v4().to_string())])).await;
    let mut zero = expense(&Uuid::new_v4().to_string());
    zero["lines"] = json!([{"netAmount": 0}]);
    let (_, second) = sandbox.post(&url, json!([zero])).await;
    let (first, second) = (first["syncId"].as_str().expect("id"), second["syncId"].as_str().expect("id"));
    let failed = sandbox.wait_for(&company, second).await;
    assert!(failed["syncStatusCode"].as_i64().expect("code") >= 4000, "{failed}");
    assert!(!failed["errorMessage"].as_str().expect("text").is_empty());
    assert_eq!(failed["dataPushed"], false);

    let (_, list) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    let listed: Vec<&str> = list.as_array().expect("array").iter().filter_map(|s| s["syncId"].as_str()).collect();
    assert_eq!(listed, vec![second, first], "newest first");
    assert_eq!(list[0]["companyId"], json!(company));
    let (_, latest) = sandbox.get(&format!("{}/syncs/latest/status", base(&company))).await;
    assert_eq!(latest["syncId"], second);
    let (_, successful) = sandbox.get(&format!("{}/syncs/lastSuccessful/status", base(&company))).await;
    assert_eq!(successful["syncId"], first);
    assert_eq!(successful["syncStatus"], "Complete");
}

#[tokio::test]
async fn an_after_effect_fault_acts_then_answers_500() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let fault = json!({"method": "POST", "pathContains": "/expense-transactions", "status": 500, "afterEffect": true});
    assert_eq!(sandbox.post("/_sandbox/faults", fault).await.0, StatusCode::OK);
    let id = Uuid::new_v4().to_string();
    let url = format!("{}/expense-transactions", base(&company));
    let (status, body) = sandbox.post(&url, json!([expense(&id)])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["statusCode"], 500);
    assert!(body["error"].is_string() && body.get("syncId").is_none(), "{body}");

    let stats = sandbox.stats(&company).await;
    assert_eq!(
        (stats["transactions"].clone(), stats["syncs"].clone(), stats["createCalls"].clone()),
        (json!(1), json!(1), json!(1))
    );
    let (_, calls) = sandbox.get("/_sandbox/calls").await;
    let call = calls.as_array().and_then(|c| c.iter().find(|c| c["path"] == url)).expect("logged").clone();
    assert_eq!(call["status"], 500, "the status answered is logged");
    assert!(call["body"].is_array(), "the bare array is logged: {call}");

    // The client retries the same id: refused, and finds the sync by listing it.
    assert_eq!(sandbox.post(&url, json!([expense(&id)])).await.0, StatusCode::BAD_REQUEST);
    let (_, list) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    let sync_id = list[0]["syncId"].as_str().expect("sync").to_string();
    let (_, listing) = sandbox.get(&format!("{}/syncs/{sync_id}/transactions", base(&company))).await;
    assert_eq!(listing["results"][0]["transactionId"], json!(id));

    // Without afterEffect the fault answers before the handler: nothing is created.
    let fault = json!({"pathContains": "/expense-transactions", "status": 503, "retryAfter": 1});
    sandbox.post("/_sandbox/faults", fault).await;
    let (status, _) = sandbox.post(&url, json!([expense(&Uuid::new_v4().to_string())])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sandbox.stats(&company).await["transactions"], 1);
}

#[tokio::test]
async fn a_delay_fault_slows_the_answer() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let fault = json!({"pathContains": "/syncs/list/status", "delayMs": 200});
    sandbox.post("/_sandbox/faults", fault).await;
    let started = std::time::Instant::now();
    let (status, _) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    assert_eq!(status, StatusCode::OK, "no status: the real answer, late");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_companys_queued_syncs_run_one_at_a_time() {
    let sandbox = Sandbox::new(40);
    let company = company();
    let url = format!("{}/expense-transactions", base(&company));
    let mut sync_ids = Vec::new();
    for _ in 0..4 {
        let (status, body) = sandbox.post(&url, json!([expense(&Uuid::new_v4().to_string())])).await;
        assert_eq!(status, StatusCode::OK);
        sync_ids.push(body["syncId"].as_str().expect("id").to_string());
    }
    let (_, queued) = sandbox.get(&format!("{}/syncs/{}/status", base(&company), sync_ids[3])).await;
    assert_eq!(queued["syncStatusCode"], 1000, "waiting behind the others: {queued}");
    let mut finished = Vec::new();
    for id in &sync_ids {
        finished.push(sandbox.wait_for(&company, id).await["syncUtc"].as_str().expect("utc").to_string());
    }
    let stats = sandbox.stats(&company).await;
    assert_eq!(stats["maxConcurrentSyncs"], 1, "{stats}");
    assert_eq!(stats["runningSyncs"], 0);
    let times: Vec<_> = finished.iter().map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("rfc3339")).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "FIFO: {finished:?}");
}

/// A create endpoint, with one transaction as JSON text: `LINES` (each line `NET`, `TAX`),
/// `RATE`, `ISSUE` and `DUE` left to fill in.
struct Create {
    url: String,
    transaction: &'static str,
    line: &'static str,
    /// Where the transaction's fields are, in validation messages.
    at: &'static str,
    v1: bool,
}

fn creates(company: &str) -> [Create; 3] {
    let line = r#"{"netAmount": NET, "taxAmount": TAX, "accountRef": {"id": "35"}}"#;
    [
        Create {
            url: format!("{}/expense-transactions", base(company)),
            transaction: r#"[{"id": "ID", "type": "Payment", "issueDate": "ISSUE", "currency": "GBP",
                              "currencyRate": RATE, "lines": LINES}]"#,
            line,
            at: "[0].",
            v1: false,
        },
        Create {
            url: format!("{}/reimbursable-expense-transactions", base(company)),
            transaction: r#"[{"id": "ID", "contactRef": {"id": "752"}, "issueDate": "ISSUE", "dueDate": "DUE",
                              "currency": "GBP", "currencyRate": RATE, "lines": LINES}]"#,
            line: r#"{"description": "Hotel", "netAmount": NET, "taxAmount": TAX}"#,
            at: "[0].",
            v1: false,
        },
        Create {
            url: format!("{}/data/expense-transactions", base(company)),
            transaction: r#"{"items": [{"id": "ID", "type": "Payment", "issueDate": "ISSUE", "currency": "GBP",
                                        "currencyRate": RATE, "lines": LINES}]}"#,
            line,
            at: "items[0]: ",
            v1: true,
        },
    ]
}

/// A line's (netAmount, taxAmount) as JSON text.
type Line<'a> = (&'a str, &'a str);

/// What to fill in: lines of (netAmount, taxAmount), currencyRate, issueDate, dueDate.
struct Fill<'a> {
    lines: &'a [Line<'a>],
    rate: &'a str,
    issue: &'a str,
    due: &'a str,
}

const FINE: Fill<'static> =
    Fill { lines: &[("100", "20")], rate: "1", issue: "2024-05-21T00:00:00Z", due: "2024-05-21" };

impl Create {
    /// The body with a new transaction id, and that id.
    fn body(&self, fill: &Fill) -> (String, String) {
        let id = Uuid::new_v4().to_string();
        let lines: Vec<String> =
            fill.lines.iter().map(|(net, tax)| self.line.replace("NET", net).replace("TAX", tax)).collect();
        let text = self
            .transaction
            .replace("ID", &id)
            .replace("LINES", &format!("[{}]", lines.join(", ")))
            .replace("RATE", fill.rate)
            .replace("ISSUE", fill.issue)
            .replace("DUE", fill.due);
        (text, id)
    }

    /// Creates the transaction and, for v1, initiates its sync; returns the sync id.
    async fn sync(&self, sandbox: &Sandbox, company: &str, text: &str) -> String {
        let (status, body) = sandbox.post_text(&self.url, text).await;
        assert_eq!(status, StatusCode::OK, "{text}: {body}");
        let sync_id = if self.v1 {
            let datasets = json!({"datasetIds": [body["datasetId"]]});
            sandbox.post(&format!("{}/syncs", base(company)), datasets).await.1["syncId"].clone()
        } else {
            body["syncId"].clone()
        };
        sync_id.as_str().expect("sync id").to_string()
    }
}

#[tokio::test]
async fn the_call_log_keeps_each_json_body_byte_for_byte() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let [expenses, ..] = creates(&company);
    // Neither 12345678901234567.89 nor 0.1000000000000000055511151231257827 has an f64.
    let body_with = |net| expenses.body(&Fill { lines: &[(net, "0.10")], rate: "1.000000000", ..FINE }).0;
    let exact = body_with("12345678901234567.89").replace('\n', "\r\n\t ");
    let (status, body) = sandbox.post_text(&expenses.url, &exact).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let too_precise = body_with("0.1000000000000000055511151231257827");
    assert_eq!(sandbox.post_text(&expenses.url, &too_precise).await.0, StatusCode::BAD_REQUEST);
    let unreadable = body_with("1e400");
    assert_eq!(sandbox.post_text(&expenses.url, &unreadable).await.0, StatusCode::BAD_REQUEST);
    let sync_id = body["syncId"].as_str().expect("id");
    sandbox.wait_for(&company, sync_id).await;
    sandbox.upload(&format!("{}/syncs/{sync_id}/transactions/{}/attachments", base(&company), Uuid::new_v4())).await;

    let calls = sandbox.calls().await;
    let posted: Vec<&Value> = calls.iter().filter(|c| c["path"] == json!(expenses.url)).collect();
    assert_eq!(posted.len(), 3);
    for (call, text) in posted.iter().zip([&exact, &too_precise, &unreadable]) {
        assert_eq!(call["rawBody"].as_str(), Some(text.as_str()), "byte for byte: {call}");
        let logged: crate::Call = serde_json::from_value((*call).clone()).expect("a Call");
        assert_eq!(logged.raw_body.as_deref(), Some(text.as_str()));
    }
    assert!(
        exact.contains("\"netAmount\": 12345678901234567.89,")
            && too_precise.contains("0.1000000000000000055511151231257827")
    );
    // `body` is as before: the same JSON, its numbers read as floats; absent when unreadable.
    assert_eq!(posted[0]["body"][0]["lines"][0]["netAmount"], json!(12345678901234568.0));
    assert!(posted[2]["body"].is_null(), "{}", posted[2]);
    let others: Vec<&Value> = calls.iter().filter(|c| c["path"] != json!(expenses.url)).collect();
    assert!(others.len() >= 2, "status polls and the upload");
    for call in others {
        assert!(call.get("rawBody").is_none(), "no body, or not JSON: no rawBody: {call}");
    }
}

#[tokio::test]
async fn amounts_a_dotnet_decimal_cannot_hold_are_refused_by_field() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let absurd = [
        "1e400",
        "-1e400",
        "9e28",
        "79228162514264337593543950336",
        "-79228162514264337593543950336",
        "1e-40",
        "0.1000000000000000055511151231257827",
        "1e99999999999999999999",
    ];
    for create in creates(&company) {
        for amount in absurd {
            for (field, fill) in [
                ("lines[0].netAmount", Fill { lines: &[(amount, "0")], ..FINE }),
                ("lines[0].taxAmount", Fill { lines: &[("1", amount)], ..FINE }),
                ("currencyRate", Fill { rate: amount, ..FINE }),
            ] {
                let (status, body) = sandbox.post_text(&create.url, &create.body(&fill).0).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{} {field} {amount}: {body}", create.url);
                assert_eq!(body["statusCode"], 400);
                assert_eq!(body["error"], "The request made is not valid.");
                let expected = format!("{}{field} must be a number a .NET decimal holds exactly", create.at);
                assert!(errors_text(&body).contains(&expected), "{} {field} {amount}: {body}", create.url);
                assert_eq!(body["validation"]["errors"].as_array().map(Vec::len), Some(1), "{body}");
            }
        }
    }
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");

    // The edges of a decimal are accepted.
    let held = [
        "79228162514264337593543950335",
        "0.0000000000000000000000000001",
        "1.000000000000000000000000000000000",
        "1E+2",
        "12345678901234567.89",
    ];
    for create in creates(&company) {
        for amount in held {
            let fill = Fill { lines: &[(amount, "0")], rate: amount, ..FINE };
            let (status, body) = sandbox.post_text(&create.url, &create.body(&fill).0).await;
            assert_eq!(status, StatusCode::OK, "{} {amount}: {body}", create.url);
        }
    }
}

#[tokio::test]
async fn huge_amounts_do_not_strand_a_sync() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let url = format!("{}/expense-transactions", base(&company));
    // Amounts beyond a decimal, read as floats or not at all, are refused up front, by field.
    let mut huge = expense(&Uuid::new_v4().to_string());
    huge["lines"] = json!([{"netAmount": 1e308, "taxAmount": 1e308}, {"netAmount": 1e308}]);
    let (status, body) = sandbox.post(&url, json!([huge])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(errors_text(&body).contains("[0].lines[1].netAmount must be"), "{body}");
    let raw = format!(
        r#"[{{"id":"{}","type":"Payment","issueDate":"2024-01-01","currency":"GBP","lines":[{{"netAmount":1e400}}]}}]"#,
        Uuid::new_v4()
    );
    let (status, body) = sandbox.post_text(&url, &raw).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&body).contains("[0].lines[0].netAmount must be"), "{body}");
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");

    // Amounts a decimal holds whose sum it does not: that transaction fails, the sync finishes.
    let max = "79228162514264337593543950335";
    let lines = [
        format!(r#"[{{"netAmount": {max}}}, {{"netAmount": 1}}]"#),
        format!(r#"[{{"netAmount": -{max}, "taxAmount": -{max}}}]"#),
        format!(r#"[{{"netAmount": {max}, "taxAmount": -{max}}}, {{"netAmount": 0.01}}]"#),
    ];
    let ids: Vec<String> = lines.iter().map(|_| Uuid::new_v4().to_string()).collect();
    let items: Vec<String> = ids
        .iter()
        .zip(&lines)
        .map(|(id, lines)| {
            format!(r#"{{"id":"{id}","type":"Payment","issueDate":"2024-01-01","currency":"GBP","lines":{lines}}}"#)
        })
        .collect();
    let (status, body) = sandbox.post_text(&url, &format!("[{}]", items.join(","))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync_id = body["syncId"].as_str().expect("id");
    let done = sandbox.wait_for(&company, sync_id).await;
    assert_eq!(done["syncStatusCode"], 2000, "{done}");
    let sync = format!("{}/syncs/{sync_id}/transactions", base(&company));
    for (id, expected) in ids.iter().zip(["ValidationError", "ValidationError", "Completed"]) {
        let (_, one) = sandbox.get(&format!("{sync}/{id}")).await;
        assert_eq!(one[0]["status"], expected, "{one}");
        if expected == "ValidationError" {
            let message = one[0]["message"].as_str().expect("message");
            assert!(message.contains("beyond the range of a decimal (±79228162514264337593543950335)"), "{message}");
        }
    }
}

#[tokio::test]
async fn totals_are_exact() {
    let sandbox = Sandbox::new(10);
    let company = company();
    // In floats (or cents) the first two total zero and the last -1e24.
    let cases: [(&[Line], Option<&str>); 5] = [
        (&[("1000000000000000000000000", "-999999999999999999999999.99")], None),
        (&[("0.001", "0")], None),
        (&[("0.1", "0"), ("0.2", "0"), ("-0.3", "0")], Some("total 0.00 must")),
        (&[("-0.001", "0")], Some("total -0.001 must")),
        (&[("-999999999999999999999999.99", "0")], Some("total -999999999999999999999999.99 must")),
    ];
    for create in creates(&company) {
        for (lines, failure) in cases {
            let (text, id) = create.body(&Fill { lines, ..FINE });
            let sync_id = create.sync(&sandbox, &company, &text).await;
            sandbox.wait_for(&company, &sync_id).await;
            let (_, one) = sandbox.get(&format!("{}/syncs/{sync_id}/transactions/{id}", base(&company))).await;
            match failure {
                None => assert_eq!(one[0]["status"], "Completed", "{text}: {one}"),
                Some(total) => {
                    assert_eq!(one[0]["status"], "ValidationError", "{text}: {one}");
                    assert!(one[0]["message"].as_str().expect("message").contains(total), "{total}: {one}");
                }
            }
        }
    }
}

#[tokio::test]
async fn dates_outside_a_dotnet_date_time_are_refused() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let refused = [
        "0000-01-01",
        "0000-12-31T00:00:00Z",
        "0000-12-31T00:00:00",
        "10000-01-01",
        "+10000-01-01T00:00:00",
        "-0001-01-01",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2024-02-30",
        "23/10/2022",
    ];
    let [expenses, reimbursables, v1] = creates(&company);
    for date in refused {
        let cases = [
            (&expenses, "[0].issueDate must be a date-time", Fill { issue: date, ..FINE }),
            (&reimbursables, "[0].issueDate must be a date-time", Fill { issue: date, ..FINE }),
            (&reimbursables, "[0].dueDate must be a date-time", Fill { due: date, ..FINE }),
            (&v1, "items[0]: issueDate is required and must be a date-time", Fill { issue: date, ..FINE }),
        ];
        for (create, expected, fill) in cases {
            let (status, body) = sandbox.post_text(&create.url, &create.body(&fill).0).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{} {date}: {body}", create.url);
            assert_eq!(body["statusCode"], 400);
            let text = errors_text(&body);
            assert!(text.contains(expected) && text.contains("with a year from 0001 to 9999"), "{date}: {text}");
        }
    }
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");

    // The first and last moments of a DateTime; v1 takes only date-times with an offset.
    let accepted = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59.9999999+01:00"];
    for date in accepted {
        for create in [&expenses, &reimbursables, &v1] {
            let (status, body) =
                sandbox.post_text(&create.url, &create.body(&Fill { issue: date, due: date, ..FINE }).0).await;
            assert_eq!(status, StatusCode::OK, "{} {date}: {body}", create.url);
        }
    }
    for date in ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59"] {
        for create in [&expenses, &reimbursables] {
            let (status, body) =
                sandbox.post_text(&create.url, &create.body(&Fill { issue: date, due: date, ..FINE }).0).await;
            assert_eq!(status, StatusCode::OK, "{} {date}: {body}", create.url);
        }
    }
}

#[tokio::test]
async fn v1_syncs_still_work_on_the_shared_paths() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let id = Uuid::new_v4().to_string();
    let item = json!({"id": id, "type": "TransferIn", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
                      "lines": [{"netAmount": 10, "taxAmount": 0, "accountRef": {"id": "35"}}]});
    let (status, body) =
        sandbox.post(&format!("{}/data/expense-transactions", base(&company)), json!({"items": [item]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        sandbox.post(&format!("{}/syncs", base(&company)), json!({"datasetIds": [body["datasetId"]]})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sync_id = body["syncId"].as_str().expect("id").to_string();
    assert_eq!(sandbox.wait_for(&company, &sync_id).await["syncStatusCode"], 2000);
    let (_, latest) = sandbox.get(&format!("{}/syncs/latest/status", base(&company))).await;
    assert_eq!(latest["syncId"], json!(sync_id));
    let sync = format!("{}/syncs/{sync_id}", base(&company));
    let (_, one) = sandbox.get(&format!("{sync}/transactions/{id}")).await;
    assert_eq!(one[0]["status"], "Completed");
    let (status, _) = sandbox.upload(&format!("{sync}/transactions/{id}/attachments")).await;
    assert_eq!(status, StatusCode::OK);
    let stats = sandbox.stats(&company).await;
    assert_eq!((stats["createCalls"].clone(), stats["datasets"].clone()), (json!(1), json!(1)));
    // Unauthenticated calls are refused and logged.
    let request = Request::builder().uri(format!("{sync}/status")).body(Body::empty()).expect("request");
    assert_eq!(sandbox.send(request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn current_api_syncs_send_signed_webhooks_and_honour_drops() {
    let (sandbox, received) = with_webhooks().await;
    let company = company();
    let drop = json!({"companyId": company, "count": 1});
    assert_eq!(sandbox.post("/_sandbox/drop-webhooks", drop).await.0, StatusCode::OK);
    let url = format!("{}/expense-transactions", base(&company));
    let (_, first) = sandbox.post(&url, json!([expense(&Uuid::new_v4().to_string())])).await;
    let mut zero = expense(&Uuid::new_v4().to_string());
    zero["lines"] = json!([{"netAmount": -1}]);
    let (_, second) = sandbox.post(&url, json!([zero])).await;
    sandbox.wait_for(&company, first["syncId"].as_str().expect("id")).await;
    sandbox.wait_for(&company, second["syncId"].as_str().expect("id")).await;
    let events = webhooks(&received, 1).await;
    assert!(!events.contains_key(first["syncId"].as_str().expect("id")), "the first sync's webhook was dropped");
    let event = &events[second["syncId"].as_str().expect("id")];
    assert_eq!(event["eventType"], "expenses.sync.unsuccessful");
    assert_eq!(event["payload"]["transactions"][0]["status"], "Failed");
}

// Transfers and adjustments (`transfers.rs`).

fn transfer(from: &str, to: &str) -> Value {
    json!({"description": "Card top-up", "date": "2024-05-21T00:00:00Z",
           "from": {"accountRef": {"id": from}, "amount": 100}, "to": {"accountRef": {"id": to}, "amount": 100}})
}

/// Takes `key` out of an object (for bodies missing a field).
fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().expect("an object").remove(key);
}

fn transfer_url(company: &str, id: &str) -> String {
    format!("{}/transfer-transactions/{id}", base(company))
}

/// A balanced adjustment: a debit of 50 and a credit of 50.
fn adjustment(id: &str) -> Value {
    json!({"id": id, "date": "2024-05-21", "currency": "GBP", "currencyRate": 1, "reference": "FX",
           "lines": [{"amount": 50, "accountRef": {"id": "80"}, "description": "debit line"},
                     {"amount": -50, "accountRef": {"id": "81"},
                      "trackingRefs": [{"id": "S1", "dataType": "suppliers"}], "invoiceTo": null}]})
}

fn adjustments_url(company: &str) -> String {
    format!("{}/adjustment-transactions", base(company))
}

fn sync_id(body: &Value) -> String {
    let id = body["syncId"].as_str().unwrap_or_else(|| panic!("no syncId: {body}"));
    assert!(Uuid::parse_str(id).is_ok(), "{id}");
    id.to_string()
}

/// One transaction as a sync reports it.
async fn sync_transaction(sandbox: &Sandbox, company: &str, sync_id: &str, id: &str) -> Value {
    let (status, one) = sandbox.get(&format!("{}/syncs/{sync_id}/transactions/{id}", base(company))).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    one[0].clone()
}

#[tokio::test]
async fn the_specs_transfer_and_adjustment_examples_are_accepted() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let path = "/companies/{companyId}/sync/expenses/transfer-transactions/{transactionId}";
    let examples = spec_examples(path, "put");
    assert_eq!(examples.len(), 1);
    for (name, body) in examples {
        let (status, answer) = sandbox.put(&transfer_url(&company, &Uuid::new_v4().to_string()), body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "only syncId: {answer}");
        assert_eq!(sandbox.wait_for(&company, &sync_id(&answer)).await["syncStatusCode"], 2000, "{name}");
    }
    let examples = spec_examples("/companies/{companyId}/sync/expenses/adjustment-transactions", "post");
    assert_eq!(examples.len(), 1);
    for (name, body) in examples {
        assert!(body.is_array(), "{name} is a bare array");
        let (status, answer) = sandbox.post(&adjustments_url(&company), body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(sandbox.wait_for(&company, &sync_id(&answer)).await["syncStatusCode"], 2000, "{name}");
    }
}

#[tokio::test]
async fn transfers_and_adjustments_sync_and_send_signed_webhooks() {
    let (sandbox, received) = with_webhooks().await;
    let company = company();
    let transfer_id = Uuid::new_v4().to_string();
    let (status, body) = sandbox.put(&transfer_url(&company, &transfer_id.to_uppercase()), transfer("97", "98")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let transfer_sync = sync_id(&body);
    let (balanced, unbalanced) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let mut bad = adjustment(&unbalanced);
    bad["lines"][1]["amount"] = json!(-40);
    let (status, body) = sandbox.post(&adjustments_url(&company), json!([adjustment(&balanced), bad])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let adjustment_sync = sync_id(&body);

    let done = sandbox.wait_for(&company, &transfer_sync).await;
    assert_eq!((done["syncStatusCode"].clone(), done["dataPushed"].clone()), (json!(2000), json!(true)));
    let done = sandbox.wait_for(&company, &adjustment_sync).await;
    assert_eq!(done["syncStatusCode"], 2000, "{done}");
    assert_eq!(done["errorMessage"], "1 of 2 transactions failed");

    // The transactions list: the YAML's `Transaction`, integrationType `expenses` for all.
    let (_, listing) = sandbox.get(&format!("{}/syncs/{transfer_sync}/transactions", base(&company))).await;
    assert_eq!(listing["totalResults"], 1);
    assert_eq!(
        listing["results"][0],
        json!({"transactionId": transfer_id, "status": "Completed", "message": null, "integrationType": "expenses"})
    );
    let one = sync_transaction(&sandbox, &company, &adjustment_sync, &balanced).await;
    assert_eq!((one["status"].clone(), one["integrationType"].clone()), (json!("Completed"), json!("expenses")));
    let one = sync_transaction(&sandbox, &company, &adjustment_sync, &unbalanced).await;
    assert_eq!(one["status"], "ValidationError");
    assert!(one["message"].as_str().expect("message").contains("lines total 10.00"), "{one}");

    let (_, list) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    let listed: Vec<&str> = list.as_array().expect("array").iter().filter_map(|s| s["syncId"].as_str()).collect();
    assert_eq!(listed, vec![adjustment_sync.as_str(), transfer_sync.as_str()], "newest first");
    let (_, latest) = sandbox.get(&format!("{}/syncs/latest/status", base(&company))).await;
    assert_eq!(latest["syncId"], json!(adjustment_sync));

    let events = webhooks(&received, 2).await;
    let event = &events[&transfer_sync];
    assert_eq!(event["eventType"], "expenses.sync.successful");
    assert_eq!(event["payload"]["referenceCompany"]["id"], json!(company));
    assert_eq!(
        event["payload"]["transactions"],
        json!([{"id": transfer_id, "status": "Completed", "errorMessage": null}])
    );
    let event = &events[&adjustment_sync];
    assert_eq!(event["eventType"], "expenses.sync.unsuccessful");
    let statuses: std::collections::HashMap<&str, &str> = event["payload"]["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| (t["id"].as_str().expect("id"), t["status"].as_str().expect("status")))
        .collect();
    assert_eq!(statuses, [(balanced.as_str(), "Completed"), (unbalanced.as_str(), "Failed")].into());
}

#[tokio::test]
async fn bad_transfer_bodies_are_refused_by_field() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let edit = |change: fn(&mut Value)| {
        let mut body = transfer("97", "98");
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (edit(|b| remove(b, "date")), "date is required"),
        (edit(|b| b["date"] = json!("21/05/2024")), "date must be a date-time"),
        (edit(|b| b["date"] = json!("0000-12-31")), "date must be a date-time"),
        (edit(|b| remove(b, "from")), "from is required"),
        (edit(|b| b["to"] = Value::Null), "to is required"),
        (edit(|b| b["from"] = json!("97")), "from must be a TransferTransactionRequest.from object"),
        (edit(|b| remove(&mut b["from"], "amount")), "from.amount is required"),
        (edit(|b| b["to"]["amount"] = json!("100")), "to.amount must be a number"),
        (edit(|b| remove(&mut b["to"], "accountRef")), "to.accountRef is required"),
        (edit(|b| b["to"]["accountRef"] = json!({})), "to.accountRef.id is required"),
        (edit(|b| b["to"]["accountRef"]["id"] = json!(98)), "to.accountRef.id must be a string"),
        (
            edit(|b| b["from"]["accountRef"]["name"] = json!("x")),
            "from.accountRef.name is not a property of AccountRef",
        ),
        (edit(|b| b["from"]["currency"] = json!("GBP")), "from.currency is not a property of"),
        (edit(|b| b["description"] = Value::Null), "description must not be null"),
        (edit(|b| b["description"] = json!(5)), "description must be a string"),
        (edit(|b| b["id"] = json!(Uuid::new_v4())), "id is not a property of TransferTransactionRequest"),
        (json!([transfer("97", "98")]), "The body must be a TransferTransactionRequest object"),
    ];
    for (body, expected) in cases {
        let id = Uuid::new_v4().to_string();
        let (status, answer) = sandbox.put(&transfer_url(&company, &id), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(
            (answer["statusCode"].clone(), answer["error"].clone()),
            (json!(400), json!("The request made is not valid."))
        );
        assert!(errors_text(&answer).contains(expected), "{expected}: {answer}");
        assert_eq!(answer["validation"]["errors"][0]["itemId"], json!(id), "{answer}");
    }
    // Amounts are read exactly, as for expenses; bodies that are not JSON are refused.
    let text = |from: &str, to: &str| {
        format!(
            r#"{{"date": "2024-05-21", "from": {{"accountRef": {{"id": "97"}}, "amount": {from}}},
                      "to": {{"accountRef": {{"id": "98"}}, "amount": {to}}}}}"#
        )
    };
    let exact = "must be a number a .NET decimal holds exactly";
    for (body, expected) in [
        (text("1e400", "100"), format!("from.amount {exact}")),
        (text("100", "0.1000000000000000055511151231257827"), format!("to.amount {exact}")),
        (text("9e28", "-1e400"), format!("to.amount {exact}")),
        (String::new(), "The body is not valid JSON".into()),
        ("{".into(), "The body is not valid JSON".into()),
    ] {
        let (status, answer) = sandbox.put_text(&transfer_url(&company, &Uuid::new_v4().to_string()), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(errors_text(&answer).contains(&expected), "{expected}: {answer}");
    }
    let (status, answer) = sandbox.put(&transfer_url(&company, "not-a-uuid"), transfer("97", "98")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&answer).contains("transactionId must be a uuid"), "{answer}");
    let (status, _) =
        sandbox.put(&transfer_url("not-a-company", &Uuid::new_v4().to_string()), transfer("97", "98")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");

    // The edges of a decimal, a plain date and no description are fine.
    let mut body = transfer("97", "98");
    body.as_object_mut().expect("object").remove("description");
    body["date"] = json!("2024-05-21");
    assert_eq!(sandbox.put(&transfer_url(&company, &Uuid::new_v4().to_string()), body).await.0, StatusCode::OK);
    let edges = text("79228162514264337593543950335", "0.0000000000000000000000000001");
    let (status, answer) = sandbox.put_text(&transfer_url(&company, &Uuid::new_v4().to_string()), &edges).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn bad_adjustment_bodies_are_refused_by_field() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let url = adjustments_url(&company);
    let edit = |change: fn(&mut Value)| {
        let mut body = adjustment(&Uuid::new_v4().to_string());
        change(&mut body);
        json!([body])
    };
    let many_lines: Vec<Value> = (0..101).map(|_| json!({"amount": 0, "accountRef": {"id": "80"}})).collect();
    let cases: Vec<(Value, String)> = vec![
        (json!([]), "The body must hold 1 to 50 transactions, got 0".into()),
        (json!((0..51).map(|_| adjustment(&Uuid::new_v4().to_string())).collect::<Vec<_>>()), "got 51".into()),
        (adjustment(&Uuid::new_v4().to_string()), "The body must be a JSON array".into()),
        (json!([1]), "[0] must be an AdjustmentTransactionRequest object".into()),
        (edit(|b| remove(b, "id")), "[0].id is required".into()),
        (edit(|b| b["id"] = json!("ADJ-1")), "[0].id must be a uuid".into()),
        (edit(|b| remove(b, "currency")), "[0].currency is required".into()),
        (edit(|b| remove(b, "date")), "[0].date is required".into()),
        (edit(|b| b["date"] = json!("2024-02-30")), "[0].date must be a date-time".into()),
        (edit(|b| b["reference"] = json!(5)), "[0].reference must be a string".into()),
        (edit(|b| b["currencyRate"] = json!("1")), "[0].currencyRate must be a number".into()),
        (
            edit(|b| b["type"] = json!("AdjustmentIn")),
            "[0].type is not a property of AdjustmentTransactionRequest".into(),
        ),
        (edit(|b| remove(b, "lines")), "[0].lines is required".into()),
        (edit(|b| b["lines"] = json!([])), "[0].lines must hold 1 to 100 items, got 0".into()),
        (json!([{"lines": many_lines}]), "[0].lines must hold 1 to 100 items, got 101".into()),
        (edit(|b| remove(&mut b["lines"][0], "accountRef")), "[0].lines[0].accountRef is required".into()),
        (edit(|b| remove(&mut b["lines"][1], "amount")), "[0].lines[1].amount is required".into()),
        (edit(|b| b["lines"][0]["amount"] = json!("50")), "[0].lines[0].amount must be a number".into()),
        (
            edit(|b| b["lines"][0]["netAmount"] = json!(50)),
            "[0].lines[0].netAmount is not a property of AdjustmentTransactionLine".into(),
        ),
        (edit(|b| b["lines"][0]["description"] = Value::Null), "[0].lines[0].description must not be null".into()),
        (
            edit(|b| b["lines"][1]["trackingRefs"] = json!([])),
            "[0].lines[1].trackingRefs must hold 1 to 10 items".into(),
        ),
        (
            edit(|b| b["lines"][1]["trackingRefs"][0]["dataType"] = json!("projects")),
            "[0].lines[1].trackingRefs[0].dataType must be one of trackingCategories, customers, suppliers".into(),
        ),
        (
            edit(|b| b["lines"][1]["invoiceTo"] = json!({"id": "7", "type": "supplier"})),
            "[0].lines[1].invoiceTo.type must be one of customer".into(),
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = sandbox.post(&url, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected}: {answer}");
        assert_eq!(
            (answer["statusCode"].clone(), answer["error"].clone()),
            (json!(400), json!("The request made is not valid."))
        );
        assert!(errors_text(&answer).contains(&expected), "{expected}: {answer}");
    }
    // Exact money, as for expenses.
    let text = |amount: &str, rate: &str| {
        format!(
            r#"[{{"id": "{}", "date": "2024-05-21", "currency": "GBP", "currencyRate": {rate},
                      "lines": [{{"amount": {amount}, "accountRef": {{"id": "80"}}}}]}}]"#,
            Uuid::new_v4()
        )
    };
    let exact = "must be a number a .NET decimal holds exactly";
    for (body, expected) in [
        (text("1e400", "1"), format!("[0].lines[0].amount {exact}")),
        (text("-79228162514264337593543950336", "1"), format!("[0].lines[0].amount {exact}")),
        (text("0", "1e-40"), format!("[0].currencyRate {exact}")),
    ] {
        let (status, answer) = sandbox.post_text(&url, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(errors_text(&answer).contains(&expected), "{expected}: {answer}");
        assert_eq!(answer["validation"]["errors"].as_array().map(Vec::len), Some(1), "{answer}");
    }
    assert!(sandbox.stats(&company).await.is_null(), "nothing was created");

    // Nullable fields may be null; an optional one left out.
    let mut fine = adjustment(&Uuid::new_v4().to_string());
    fine["currencyRate"] = Value::Null;
    fine["reference"] = Value::Null;
    fine["lines"][1]["trackingRefs"] = Value::Null;
    fine["date"] = json!("2024-05-21T10:00:00");
    fine["lines"][0].as_object_mut().expect("line").remove("description");
    let (status, answer) = sandbox.post(&url, json!([fine])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn adjustment_and_transfer_ids_are_used_once_per_company_across_the_apis() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let url = adjustments_url(&company);
    let used = Uuid::new_v4().to_string();
    assert_eq!(sandbox.post(&url, json!([adjustment(&used)])).await.0, StatusCode::OK);
    for body in [json!([adjustment(&used)]), json!([adjustment(&used.to_uppercase())])] {
        let (status, answer) = sandbox.post(&url, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(errors_text(&answer).contains(&format!("Transaction id {used} has already been used")), "{answer}");
        assert_eq!(answer["validation"]["errors"][0]["itemId"], json!(used));
    }
    let twice = Uuid::new_v4().to_string();
    assert_eq!(sandbox.post(&url, json!([adjustment(&twice), adjustment(&twice)])).await.0, StatusCode::BAD_REQUEST);
    let expenses = format!("{}/expense-transactions", base(&company));
    assert_eq!(sandbox.post(&expenses, json!([expense(&used)])).await.0, StatusCode::BAD_REQUEST);
    let (status, answer) = sandbox.put(&transfer_url(&company, &used), transfer("97", "98")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a transfer cannot take an adjustment's id");
    assert!(errors_text(&answer).contains("has already been used"), "{answer}");

    // An expense's or a transfer's id is not an adjustment's either.
    let expense_id = Uuid::new_v4().to_string();
    assert_eq!(sandbox.post(&expenses, json!([expense(&expense_id)])).await.0, StatusCode::OK);
    assert_eq!(sandbox.post(&url, json!([adjustment(&expense_id)])).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        sandbox.put(&transfer_url(&company, &expense_id), transfer("97", "98")).await.0,
        StatusCode::BAD_REQUEST
    );
    let transfer_id = Uuid::new_v4().to_string();
    assert_eq!(sandbox.put(&transfer_url(&company, &transfer_id), transfer("97", "98")).await.0, StatusCode::OK);
    assert_eq!(sandbox.post(&url, json!([adjustment(&transfer_id)])).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(sandbox.post(&expenses, json!([expense(&transfer_id)])).await.0, StatusCode::BAD_REQUEST);

    let stats = sandbox.stats(&company).await;
    assert_eq!(stats["transactions"], 3);
    assert_eq!(stats["createCalls"], 3);
    assert_eq!(stats["transfers"], json!({transfer_id: {"creates": 1, "resends": 0, "updates": 0}}));
}

#[tokio::test]
async fn a_transfer_put_again_is_a_resend_or_an_update_each_with_its_own_sync() {
    let sandbox = Sandbox::new(50);
    let company = company();
    let id = Uuid::new_v4().to_string();
    let url = transfer_url(&company, &id);
    // From and to the same account: this sync fails it.
    let (status, first) = sandbox.put(&url, transfer("97", "97")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // The same content (keys reordered, 100 written 100.00) while the first sync is still queued.
    let same = r#"{"to": {"amount": 100.00, "accountRef": {"id": "97"}}, "date": "2024-05-21T00:00:00Z",
                   "from": {"accountRef": {"id": "97"}, "amount": 1E+2}, "description": "Card top-up"}"#;
    let (status, second) = sandbox.put_text(&url, same).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (_, stats) = sandbox.get("/_sandbox/stats").await;
    assert_eq!(stats["companies"][&company]["transfers"][&id], json!({"creates": 1, "resends": 1, "updates": 0}));
    // Different content: an update, which fixes it.
    let (status, third) = sandbox.put(&url, transfer("97", "98")).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let syncs = [sync_id(&first), sync_id(&second), sync_id(&third)];
    assert!(syncs[0] != syncs[1] && syncs[1] != syncs[2], "each PUT is a new sync: {syncs:?}");

    for (sync, expected) in syncs.iter().zip([4000, 4000, 2000]) {
        assert_eq!(sandbox.wait_for(&company, sync).await["syncStatusCode"], expected, "{sync}");
    }
    // Each sync reports the version it carried.
    for (sync, expected) in syncs.iter().zip(["ValidationError", "ValidationError", "Completed"]) {
        let one = sync_transaction(&sandbox, &company, sync, &id).await;
        assert_eq!(one["status"], expected, "{sync}: {one}");
        let (_, listing) = sandbox.get(&format!("{}/syncs/{sync}/transactions", base(&company))).await;
        assert_eq!(listing["results"][0]["status"], expected, "{listing}");
    }
    let one = sync_transaction(&sandbox, &company, &syncs[0], &id).await;
    assert!(one["message"].as_str().expect("message").contains("same account (97)"), "{one}");
    let (_, list) = sandbox.get(&format!("{}/syncs/list/status", base(&company))).await;
    let listed: Vec<&str> = list.as_array().expect("array").iter().filter_map(|s| s["syncId"].as_str()).collect();
    assert_eq!(listed, vec![syncs[2].as_str(), syncs[1].as_str(), syncs[0].as_str()]);
    let (_, successful) = sandbox.get(&format!("{}/syncs/lastSuccessful/status", base(&company))).await;
    assert_eq!(successful["syncId"], json!(syncs[2]));

    // Back to the first content: different from the latest, so an update again.
    assert_eq!(sandbox.put(&url, transfer("97", "97")).await.0, StatusCode::OK);
    let stats = sandbox.stats(&company).await;
    assert_eq!(stats["transfers"][&id], json!({"creates": 1, "resends": 1, "updates": 2}));
    assert_eq!((stats["transactions"].clone(), stats["syncs"].clone()), (json!(1), json!(4)));
    assert_eq!(stats["createCalls"], 1, "only the first PUT created");
}

#[tokio::test]
async fn transfer_and_adjustment_rules_apply_when_the_sync_runs() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let transfers = [
        ("97", "100", "98", "85.50", None),
        ("97", "100", "97", "100", Some("same account (97)")),
        ("97", "100", "98", "0", Some("to.amount 0.00 must be greater than zero")),
        ("97", "-0.001", "98", "1", Some("from.amount -0.001 must be greater than zero")),
    ];
    for (from, from_amount, to, to_amount, failure) in transfers {
        let id = Uuid::new_v4().to_string();
        let text = format!(
            r#"{{"date": "2024-05-21", "from": {{"accountRef": {{"id": "{from}"}}, "amount": {from_amount}}},
                 "to": {{"accountRef": {{"id": "{to}"}}, "amount": {to_amount}}}}}"#
        );
        let (status, body) = sandbox.put_text(&transfer_url(&company, &id), &text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let sync = sync_id(&body);
        sandbox.wait_for(&company, &sync).await;
        let one = sync_transaction(&sandbox, &company, &sync, &id).await;
        match failure {
            None => assert_eq!(one["status"], "Completed", "{text}: {one}"),
            Some(message) => {
                assert_eq!(one["status"], "ValidationError", "{text}: {one}");
                assert!(one["message"].as_str().expect("message").contains(message), "{message}: {one}");
            }
        }
    }
    // Lines must balance exactly: in floats the first is off by 5.55e-17 and the second is 0.
    let max = "79228162514264337593543950335";
    let adjustments = [
        (vec!["0.1", "0.2", "-0.3"], None),
        (vec!["1000000000000000000000000", "-999999999999999999999999.99"], Some("lines total 0.01:")),
        (vec!["50"], Some("lines total 50.00:")),
        (vec![max, "1"], Some("beyond the range of a decimal")),
        (vec![max, "-1", "-79228162514264337593543950334"], None),
    ];
    let ids: Vec<String> = adjustments.iter().map(|_| Uuid::new_v4().to_string()).collect();
    let items: Vec<String> = ids
        .iter()
        .zip(&adjustments)
        .map(|(id, (amounts, _))| {
            let lines: Vec<String> =
                amounts.iter().map(|a| format!(r#"{{"amount": {a}, "accountRef": {{"id": "80"}}}}"#)).collect();
            format!(r#"{{"id": "{id}", "date": "2024-05-21", "currency": "GBP", "lines": [{}]}}"#, lines.join(", "))
        })
        .collect();
    let (status, body) = sandbox.post_text(&adjustments_url(&company), &format!("[{}]", items.join(", "))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync = sync_id(&body);
    let done = sandbox.wait_for(&company, &sync).await;
    assert_eq!(done["errorMessage"], "3 of 5 transactions failed", "{done}");
    for (id, (amounts, failure)) in ids.iter().zip(&adjustments) {
        let one = sync_transaction(&sandbox, &company, &sync, id).await;
        match failure {
            None => assert_eq!(one["status"], "Completed", "{amounts:?}: {one}"),
            Some(message) => {
                assert_eq!(one["status"], "ValidationError", "{amounts:?}: {one}");
                assert!(one["message"].as_str().expect("message").contains(message), "{message}: {one}");
            }
        }
    }
}

#[tokio::test]
async fn attachments_for_transfers_and_adjustments_are_refused_and_never_recorded() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let transfer_id = Uuid::new_v4().to_string();
    let (_, body) = sandbox.put(&transfer_url(&company, &transfer_id), transfer("97", "98")).await;
    let transfer_sync = sync_id(&body);
    let adjustment_id = Uuid::new_v4().to_string();
    let (_, body) = sandbox.post(&adjustments_url(&company), json!([adjustment(&adjustment_id)])).await;
    let adjustment_sync = sync_id(&body);
    sandbox.wait_for(&company, &transfer_sync).await;
    sandbox.wait_for(&company, &adjustment_sync).await;

    let attachment = |sync: &str, id: &str| format!("{}/syncs/{sync}/transactions/{id}/attachments", base(&company));
    for (sync, id, kind) in
        [(&transfer_sync, &transfer_id, "a transfer"), (&adjustment_sync, &adjustment_id, "an adjustment")]
    {
        assert_eq!(sync_transaction(&sandbox, &company, sync, id).await["status"], "Completed");
        let (status, answer) = sandbox.upload(&attachment(sync, id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            (answer["statusCode"].clone(), answer["error"].clone()),
            (json!(400), json!("The request made is not valid."))
        );
        let error = &answer["validation"]["errors"][0];
        assert_eq!(error["itemId"], json!(id), "{answer}");
        let expected = format!("Transaction {id} is {kind}: attachments are not supported");
        assert!(error["message"].as_str().expect("message").contains(&expected), "{answer}");
    }
    // Even when the answer is lost, nothing was stored.
    let fault = json!({"pathContains": "/attachments", "status": 500, "afterEffect": true});
    sandbox.post("/_sandbox/faults", fault).await;
    let (status, _) = sandbox.upload(&attachment(&transfer_sync, &transfer_id)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The wrong sync is still a 404.
    let (status, _) = sandbox.upload(&attachment(&adjustment_sync, &transfer_id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(sandbox.stats(&company).await["attachments"], 0);
    let uploads: Vec<Value> = sandbox
        .calls()
        .await
        .into_iter()
        .filter(|c| c["path"].as_str().is_some_and(|p| p.ends_with("/attachments")))
        .collect();
    assert_eq!(uploads.len(), 4);
    assert!(uploads.iter().all(|c| c["attachment"].is_null()), "{uploads:?}");
    assert_eq!(uploads[2]["handledStatus"], 400, "what Codat did under the lost answer");
}

#[tokio::test]
async fn faults_and_the_call_log_apply_to_transfers_and_adjustments() {
    let sandbox = Sandbox::new(10);
    let company = company();
    // Codat stores the transfer, the answer is lost; the client's retry is a resend.
    let fault = json!({"method": "PUT", "pathContains": "/transfer-transactions/", "status": 500, "afterEffect": true});
    sandbox.post("/_sandbox/faults", fault).await;
    let id = Uuid::new_v4().to_string();
    let url = transfer_url(&company, &id);
    let text = "{\"date\": \"2024-05-21\",\r\n \"from\": {\"accountRef\": {\"id\": \"97\"}, \"amount\": 12345678901234567.89},\n\t\
                \"to\": {\"accountRef\": {\"id\": \"98\"}, \"amount\": 0.1000000000000000000000000001}}";
    let (status, body) = sandbox.put_text(&url, text).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.get("syncId").is_none(), "{body}");
    let stats = sandbox.stats(&company).await;
    assert_eq!(stats["transfers"][&id], json!({"creates": 1, "resends": 0, "updates": 0}));
    assert_eq!(stats["syncs"], 1);
    let (status, body) = sandbox.put_text(&url, text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sandbox.wait_for(&company, &sync_id(&body)).await["syncStatusCode"], 2000);
    assert_eq!(sandbox.stats(&company).await["transfers"][&id], json!({"creates": 1, "resends": 1, "updates": 0}));

    // Before the handler: nothing is created.
    let fault = json!({"pathContains": "/adjustment-transactions", "status": 503, "retryAfter": 2});
    sandbox.post("/_sandbox/faults", fault).await;
    let adjustment_id = Uuid::new_v4().to_string();
    let adjustment_text = format!(
        r#"[{{"id": "{adjustment_id}", "date": "2024-05-21", "currency": "GBP",
             "lines": [{{"amount": 0.10, "accountRef": {{"id": "80"}}}}, {{"amount": -0.1, "accountRef": {{"id": "81"}}}}]}}]"#
    );
    let url_adjustments = adjustments_url(&company);
    assert_eq!(sandbox.post_text(&url_adjustments, &adjustment_text).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sandbox.stats(&company).await["transactions"], 1);
    // After the handler: created, and the retry of the same id is refused as for expenses.
    let fault = json!({"pathContains": "/adjustment-transactions", "status": 500, "afterEffect": true});
    sandbox.post("/_sandbox/faults", fault).await;
    assert_eq!(sandbox.post_text(&url_adjustments, &adjustment_text).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, answer) = sandbox.post_text(&url_adjustments, &adjustment_text).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors_text(&answer).contains("has already been used"), "{answer}");
    let (_, latest) = sandbox.get(&format!("{}/syncs/latest/status", base(&company))).await;
    let sync = latest["syncId"].as_str().expect("sync");
    assert_eq!(sync_transaction(&sandbox, &company, sync, &adjustment_id).await["transactionId"], json!(adjustment_id));

    // A delay fault slows a transfer PUT, which still acts.
    sandbox.post("/_sandbox/faults", json!({"pathContains": "/transfer-transactions/", "delayMs": 150})).await;
    let started = std::time::Instant::now();
    assert_eq!(
        sandbox.put(&transfer_url(&company, &Uuid::new_v4().to_string()), transfer("1", "2")).await.0,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(150));

    // The call log: every call with the status answered, what Codat did, and the exact text.
    let calls = sandbox.calls().await;
    let puts: Vec<&Value> = calls.iter().filter(|c| c["path"] == json!(url)).collect();
    let outcomes: Vec<(Value, Value)> =
        puts.iter().map(|c| (c["status"].clone(), c["handledStatus"].clone())).collect();
    assert_eq!(outcomes, vec![(json!(500), json!(200)), (json!(200), json!(200))]);
    for call in &puts {
        assert_eq!(call["method"], "PUT");
        assert_eq!(call["rawBody"].as_str(), Some(text), "byte for byte: {call}");
        let logged: crate::Call = serde_json::from_value((*call).clone()).expect("a Call");
        assert_eq!(logged.raw_body.as_deref(), Some(text));
    }
    let posts: Vec<&Value> = calls.iter().filter(|c| c["path"] == json!(url_adjustments)).collect();
    let outcomes: Vec<(Value, Value)> =
        posts.iter().map(|c| (c["status"].clone(), c["handledStatus"].clone())).collect();
    assert_eq!(outcomes, vec![(json!(503), Value::Null), (json!(500), json!(200)), (json!(400), json!(400))]);
    assert!(posts.iter().all(|c| c["rawBody"].as_str() == Some(adjustment_text.as_str())), "{posts:?}");
}

fn connections_url(company: &str) -> String {
    format!("/companies/{company}/connections")
}

fn admin_connections_url(company: &str) -> String {
    format!("/_sandbox/companies/{company}/connections")
}

/// A completed current-API transaction of the company: `(sync, id)`.
async fn completed(sandbox: &Sandbox, company: &str, path: &str, txn: Value) -> (String, String) {
    let id = txn["id"].as_str().expect("id").to_string();
    let (status, body) = sandbox.post(&format!("{}/{path}", base(company)), json!([txn])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync = sync_id(&body);
    sandbox.wait_for(company, &sync).await;
    (sync, id)
}

fn attachment_url(company: &str, sync: &str, id: &str) -> String {
    format!("{}/syncs/{sync}/transactions/{id}/attachments", base(company))
}

fn refusal_message(answer: &Value) -> String {
    assert_eq!(answer["statusCode"], 400, "{answer}");
    answer["validation"]["errors"][0]["message"].as_str().expect("message").to_string()
}

#[tokio::test]
async fn every_company_has_one_linked_xero_connection_listed_in_pages() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let (status, listing) = sandbox.get(&connections_url(&company)).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert_eq!((listing["pageNumber"].clone(), listing["pageSize"].clone()), (json!(1), json!(100)));
    assert_eq!(listing["totalResults"], 1);
    assert!(listing["_links"]["self"]["href"].is_string() && listing["_links"]["current"]["href"].is_string());
    assert!(listing["_links"].get("next").is_none(), "{listing}");
    let xero = &listing["results"][0];
    let text = std::fs::read_to_string(SPEC).expect("read the current spec");
    let spec: Value = serde_norway::from_str(&text).expect("parse the current spec");
    let schema = &spec["components"]["schemas"]["Connection"];
    for field in schema["required"].as_array().expect("required") {
        assert!(!xero[field.as_str().expect("name")].is_null(), "{field} missing: {xero}");
    }
    let known = schema["properties"].as_object().expect("properties");
    assert!(xero.as_object().expect("object").keys().all(|k| known.contains_key(k)), "{xero}");
    assert_eq!(
        (&xero["platformName"], &xero["integrationKey"], &xero["sourceType"], &xero["status"]),
        (&json!("Xero"), &json!("gbol"), &json!("Accounting"), &json!("Linked"))
    );
    let id = xero["id"].as_str().expect("id");
    assert!(Uuid::parse_str(id).is_ok() && Uuid::parse_str(xero["integrationId"].as_str().expect("id")).is_ok());
    assert!(xero["linkUrl"].as_str().expect("url").contains(&format!("/companies/{company}/connections/{id}/")));
    // The same connection every time, and after a reset.
    sandbox.post("/_sandbox/reset", json!({})).await;
    assert_eq!(sandbox.get(&connections_url(&company.to_uppercase())).await.1["results"][0]["id"], json!(id));

    // Paging, ordering and querying over several connections.
    let three = json!({"connections": [
        {"platformName": "Xero"},
        {"platformName": "Plaid", "sourceType": "Banking", "integrationKey": "ndxg"},
        {"platformName": "Basiq", "sourceType": "Banking", "integrationKey": "dfxm", "status": "Deauthorized"},
    ]});
    assert_eq!(sandbox.put(&admin_connections_url(&company), three).await.0, StatusCode::OK);
    let url = connections_url(&company);
    let (_, first) = sandbox.get(&format!("{url}?page=1&pageSize=2&orderBy=-platformName")).await;
    assert_eq!(first["totalResults"], 3);
    let names: Vec<&Value> = first["results"].as_array().expect("results").iter().map(|c| &c["platformName"]).collect();
    assert_eq!(names, [&json!("Xero"), &json!("Plaid")]);
    assert!(first["_links"]["next"]["href"].as_str().expect("next").contains("page=2"), "{first}");
    let (_, second) = sandbox.get(&format!("{url}?page=2&pageSize=2&orderBy=-platformName")).await;
    assert_eq!(second["results"][0]["platformName"], "Basiq");
    assert!(second["_links"]["previous"].is_object() && second["_links"].get("next").is_none());
    let (_, beyond) = sandbox.get(&format!("{url}?page=3&pageSize=2")).await;
    assert_eq!((beyond["results"].clone(), beyond["totalResults"].clone()), (json!([]), json!(3)));
    for (query, count) in [
        ("sourceType%3DBanking", 2),
        ("sourceType%3Dbanking%26%26status%3DLinked", 1),
        ("platformName%21%3DXero", 2),
        ("platformName~as", 1),
        ("integrationKey%3D%7Bgbol%7D", 1),
    ] {
        let (status, body) = sandbox.get(&format!("{url}?query={query}")).await;
        assert_eq!((status, body["totalResults"].clone()), (StatusCode::OK, json!(count)), "{query}: {body}");
    }
    for (bad, expected) in [
        ("query=tags%3Dx", "Could not resolve property tags on Connection"),
        ("query=a%3D1%7C%7Cb%3D2", "Malformed query"),
        ("query=status", "Malformed query"),
        ("orderBy=colour", "Could not resolve property colour"),
        ("page=0", "page must be"),
        ("pageSize=5001", "pageSize must be"),
    ] {
        let (status, body) = sandbox.get(&format!("{url}?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let error = body["error"].as_str().expect("error");
        assert!(error.starts_with("Error parsing query - ") && error.contains(expected), "{bad}: {body}");
    }
    let (status, body) = sandbox.get(&connections_url("not-a-company")).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::NOT_FOUND, json!("No company was found with that ID")));
}

#[tokio::test]
async fn one_connection_by_id_or_codats_404() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let (_, listing) = sandbox.get(&connections_url(&company)).await;
    let xero = listing["results"][0].clone();
    let id = xero["id"].as_str().expect("id");
    let (status, one) = sandbox.get(&format!("{}/{}", connections_url(&company), id.to_uppercase())).await;
    assert_eq!((status, &one), (StatusCode::OK, &xero));
    let missing = Uuid::new_v4().to_string();
    let (status, body) = sandbox.get(&format!("{}/{missing}", connections_url(&company))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        (body["statusCode"].clone(), body["error"].clone()),
        (json!(404), json!(format!("Data connection {missing} not found")))
    );
    assert!(body["correlationId"].is_string() && body["canBeRetried"].is_string(), "{body}");
    let (status, _) = sandbox.get(&format!("{}/{id}", connections_url("nope"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_admin_route_replaces_a_companys_connections_until_a_reset() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let (status, body) =
        sandbox.put(&admin_connections_url(&company), json!({"platformName": "QuickBooks Online"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let qbo = &body["connections"][0];
    assert_eq!(
        (&qbo["integrationKey"], &qbo["status"], &qbo["sourceType"]),
        (&json!("qhyg"), &json!("Linked"), &json!("Accounting"))
    );
    let (_, listing) = sandbox.get(&connections_url(&company)).await;
    assert_eq!((listing["totalResults"].clone(), &listing["results"][0]), (json!(1), qbo));
    let (_, one) = sandbox.get(&format!("{}/{}", connections_url(&company), qbo["id"].as_str().expect("id"))).await;
    assert_eq!(&one, qbo);
    let (_, other) = sandbox.get(&connections_url(&Uuid::new_v4().to_string())).await;
    assert_eq!(other["results"][0]["platformName"], "Xero", "other companies keep the default");

    let keys = json!({"connections": [{"platformName": "QuickBooks Desktop", "status": "Unlinked"},
                                      {"platformName": "NetSuite"}, {"platformName": "Zoho Books", "sourceType": "Other"},
                                      {"platformName": "FreeAgent", "status": "PendingAuth"},
                                      {"platformName": "Dynamics 365 Business Central", "status": "Unlinked"},
                                      {"platformName": "Sage Anything", "status": "Unlinked"}]});
    let (status, body) = sandbox.put(&admin_connections_url(&company), keys).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<&str> = body["connections"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["integrationKey"].as_str().expect("key"))
        .collect();
    assert_eq!(keys[..5], ["pqsw", "akxx", "rwuv", "fbrh", "trji"]);
    assert!(keys[5].len() == 4 && keys[5].bytes().all(|b| b.is_ascii_lowercase()), "{keys:?}");
    assert!(body["connections"][0]["lastSync"].is_null() && body["connections"][1]["lastSync"].is_string());

    for bad in [
        json!({"platformName": "Xero", "status": "Connected"}),
        json!({"platformName": "Xero", "sourceType": "Ledger"}),
        json!({"platformName": "Xero", "integrationKey": "GBOL"}),
        json!({"platformName": ""}),
        json!({"platform": "Xero"}),
        json!({"connections": [{"platformName": "Xero"}, {"platformName": "QuickBooks Online"}]}),
    ] {
        let (status, body) = sandbox.put(&admin_connections_url(&company), bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    assert_eq!(sandbox.get(&connections_url(&company)).await.1["totalResults"], 6, "a refused PUT changes nothing");
    sandbox.post("/_sandbox/reset", json!({})).await;
    assert_eq!(sandbox.get(&connections_url(&company)).await.1["results"][0]["platformName"], "Xero");
}

#[tokio::test]
async fn quickbooks_desktop_takes_no_attachment() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let (sync, id) = completed(&sandbox, &company, "expense-transactions", expense(&Uuid::new_v4().to_string())).await;
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "QuickBooks Desktop"})).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "The request made is not valid.");
    assert_eq!(answer["validation"]["errors"][0]["itemId"], json!(id));
    assert!(refusal_message(&answer).contains("QuickBooks Desktop does not support attachment upload"), "{answer}");

    // No linked accounting connection: nowhere to put the file.
    let unlinked = json!({"connections": [{"platformName": "Xero", "status": "Unlinked"},
                                          {"platformName": "Plaid", "sourceType": "Banking"}]});
    sandbox.put(&admin_connections_url(&company), unlinked).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refusal_message(&answer).contains("no linked accounting connection"), "{answer}");
    assert_eq!(sandbox.stats(&company).await["attachments"], 0);
}

#[tokio::test]
async fn quickbooks_online_takes_files_for_some_transaction_types_only() {
    let sandbox = Sandbox::new(10);
    let company = company();
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "QuickBooks Online"})).await;
    let mut reward = expense(&Uuid::new_v4().to_string());
    reward["type"] = json!("Reward");
    let (sync, id) = completed(&sandbox, &company, "expense-transactions", reward).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = refusal_message(&answer);
    assert!(
        message.contains("QuickBooks Online does not support attachments for expense-transactions.Reward"),
        "{message}"
    );

    let (sync, id) = completed(&sandbox, &company, "expense-transactions", expense(&Uuid::new_v4().to_string())).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::OK, "a Payment: {answer}");
    let reimbursable = json!({"id": Uuid::new_v4(), "contactRef": {"id": "752"}, "issueDate": "2024-05-21",
                              "dueDate": "2024-05-21", "currency": "GBP", "lines": [{"netAmount": 1}]});
    let (sync, id) = completed(&sandbox, &company, "reimbursable-expense-transactions", reimbursable).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::OK, "a reimbursable: {answer}");
    assert_eq!(sandbox.stats(&company).await["attachments"], 2);

    // NetSuite takes no file for a reimbursable expense.
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "Oracle NetSuite"})).await;
    let (status, answer) = sandbox.upload(&attachment_url(&company, &sync, &id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refusal_message(&answer).contains("for reimbursable-expense-transactions"), "{answer}");
}

#[tokio::test]
async fn each_integration_has_its_size_and_file_type_limits() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let (sync, id) = completed(&sandbox, &company, "expense-transactions", expense(&Uuid::new_v4().to_string())).await;
    let url = attachment_url(&company, &sync, &id);
    const MIB: usize = 1024 * 1024;
    // Xero (the default): 3 MB, what intake allows a receipt, is taken; a byte more is not.
    let (status, answer) = sandbox.upload_file(&url, "big.png", "image/png", vec![0; 3 * MIB]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = sandbox.upload_file(&url, "big.png", "image/png", vec![0; 3 * MIB + 1]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refusal_message(&answer).contains("Xero takes attachments of at most 3 MB"), "{answer}");
    for (name, content_type) in [("receipt.jpg", "image/jpeg"), ("receipt", "image/gif"), ("notes.txt", "text/plain")] {
        let (status, answer) = sandbox.upload_file(&url, name, content_type, b"x".to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
    }
    let (status, answer) = sandbox.upload_file(&url, "receipt.webp", "image/webp", b"RIFF".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refusal_message(&answer).contains("Xero does not support the file type of receipt.webp"), "{answer}");

    // Zoho Books: 5 MB, and no WebP either; FreeAgent's X-PDF is a PDF.
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "Zoho Books"})).await;
    assert_eq!(sandbox.upload_file(&url, "big.pdf", "application/pdf", vec![0; 5 * MIB]).await.0, StatusCode::OK);
    let (status, answer) = sandbox.upload_file(&url, "big.pdf", "application/pdf", vec![0; 5 * MIB + 1]).await;
    assert!(status == StatusCode::BAD_REQUEST && refusal_message(&answer).contains("at most 5 MB"), "{answer}");
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "FreeAgent"})).await;
    assert_eq!(sandbox.upload(&url).await.0, StatusCode::OK);
    let (status, _) = sandbox.upload_file(&url, "sheet.csv", "text/csv", b"a,b".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn v1_uploads_keep_their_rules_the_v1_spec_has_no_integration_table() {
    let sandbox = Sandbox::new(10);
    let company = company();
    let id = Uuid::new_v4().to_string();
    let mut item = expense(&id);
    item["contactRef"] = json!({"id": "430"});
    item.as_object_mut().expect("object").remove("bankAccountRef");
    let (_, body) =
        sandbox.post(&format!("{}/data/expense-transactions", base(&company)), json!({"items": [item]})).await;
    let (_, body) =
        sandbox.post(&format!("{}/syncs", base(&company)), json!({"datasetIds": [body["datasetId"]]})).await;
    let sync = sync_id(&body);
    sandbox.wait_for(&company, &sync).await;
    let url = attachment_url(&company, &sync, &id);
    let (status, answer) = sandbox.upload_file(&url, "big.png", "image/png", vec![0; 4 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::OK, "intake's 4 MB v1 receipt, on Xero: {answer}");
    sandbox.put(&admin_connections_url(&company), json!({"platformName": "QuickBooks Desktop"})).await;
    assert_eq!(sandbox.upload(&url).await.0, StatusCode::OK);
}
