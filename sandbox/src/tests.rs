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

    /// Posts JSON text as written: amounts a `Value` would round reach the sandbox intact.
    async fn post_text(&self, path: &str, text: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::POST)
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
        let boundary = "sandbox-boundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"receipt.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.4 receipt\r\n--{boundary}--\r\n"
        );
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

/// The request examples of a path's POST, from the YAML contract.
fn spec_examples(path: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(SPEC).expect("read the current spec");
    let spec: Value = serde_norway::from_str(&text).expect("parse the current spec");
    let examples = &spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"];
    let examples = examples.as_object().expect("request examples");
    examples.iter().map(|(name, e)| (name.clone(), e["value"].clone())).collect()
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
        let examples = spec_examples(path);
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
    use std::sync::{Arc, Mutex};

    type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;
    let received: Received = Arc::default();
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

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let config = Config {
        webhook_url: Some(hook),
        webhook_mode: crate::WebhookMode::Svix { secret: secret.into() },
        ..Config::for_tests(KEY)
    };
    let sandbox = Sandbox { app: router(config) };
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
    for _ in 0..100 {
        if !received.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1, "the first sync's webhook was dropped");
    let (headers, body) = &received[0];
    svix::webhooks::Webhook::new(secret).expect("secret").verify(body, headers).expect("a valid Svix signature");
    let event: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(event["eventType"], "expenses.sync.unsuccessful");
    assert_eq!(event["payload"]["syncId"], second["syncId"]);
    assert_eq!(event["payload"]["transactions"][0]["status"], "Failed");
}
