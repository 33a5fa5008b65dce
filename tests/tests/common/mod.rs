//! Talks to the local environment the way a user and Codat's sandbox would.
#![allow(dead_code)] // each test file uses its own part of these helpers

use std::time::{Duration, Instant};

use base64::Engine;
use codat_sandbox::{AttachmentLog, Call};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const NEEDS_STACK: &str = "needs the local environment: run `local/devenv.py test`";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Expenses,
    V1,
}

#[derive(Clone)]
pub struct Stack {
    pub api: String,
    pub sandbox: String,
    pub http: reqwest::Client,
}

/// A receipt as sent, to compare with what Codat received.
pub struct SentReceipt {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

pub struct Approval {
    pub company: String,
    pub body: Value,
    /// The receipts of the items that have one (expenses and reimbursable expenses).
    pub receipts: Vec<(String, SentReceipt)>,
}

/// Every kind an approval holds, in the order intake stores them.
pub const KINDS: [&str; 4] = ["expenses", "reimbursableExpenses", "transfers", "adjustments"];

impl Approval {
    /// Every item's id, in the order intake stores them.
    pub fn ids(&self) -> Vec<String> {
        KINDS
            .iter()
            .flat_map(|kind| self.body[kind].as_array().cloned().unwrap_or_default())
            .map(|item| item["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// The ids of one kind.
    pub fn ids_of(&self, kind: &str) -> Vec<String> {
        let items = self.body[kind].as_array().cloned().unwrap_or_default();
        items.iter().map(|item| item["id"].as_str().unwrap().to_string()).collect()
    }

    /// `n` card expenses: the samples' card expenses over and over, each with a fresh id.
    pub fn repeated(mut self, n: usize) -> Self {
        let samples = self.body["expenses"].as_array().unwrap().clone();
        let receipts = std::mem::take(&mut self.receipts);
        let mut expenses = Vec::new();
        for i in 0..n {
            let mut expense = samples[i % samples.len()].clone();
            let id = Uuid::new_v4().to_string();
            expense["id"] = json!(id);
            let sent = &receipts[i % samples.len()].1;
            let copy = SentReceipt {
                file_name: sent.file_name.clone(),
                content_type: sent.content_type.clone(),
                bytes: sent.bytes.clone(),
            };
            self.receipts.push((id, copy));
            expenses.push(expense);
        }
        self.body["expenses"] = json!(expenses);
        self
    }

    /// The card expenses alone (one create call under either API).
    pub fn cards_only(self) -> Self {
        self.only(&["expenses"])
    }

    /// Only the items of `kinds`.
    pub fn only(mut self, kinds: &[&str]) -> Self {
        for kind in KINDS.iter().filter(|k| !kinds.contains(k)) {
            self.body.as_object_mut().unwrap().remove(*kind);
        }
        let kept = self.ids();
        self.receipts.retain(|(id, _)| kept.contains(id));
        self
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS_STACK}"))
}

impl Stack {
    pub fn from_env() -> Self {
        Self { api: env("EXPENSE_SYNC_API"), sandbox: env("SANDBOX_URL"), http: reqwest::Client::new() }
    }

    /// The Codat API the functions create new approvals with (`CODAT_API`).
    pub fn api(&self) -> Api {
        match std::env::var("CODAT_API").as_deref() {
            Ok("v1") => Api::V1,
            _ => Api::Expenses,
        }
    }

    /// The sample expenses of `examples/` (reimbursable ones too, where the API has them),
    /// under a fresh company and fresh ids: every one ends `uploaded`.
    pub fn sample_approval(&self) -> Approval {
        self.samples(&["expenses", "reimbursableExpenses"])
    }

    /// Every sample of `examples/` the API takes: transfers and adjustments too, on the
    /// current API.
    pub fn sample_of_every_kind(&self) -> Approval {
        self.samples(&KINDS)
    }

    fn samples(&self, wanted: &[&str]) -> Approval {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let spec: Value = serde_json::from_slice(&std::fs::read(root.join("approvals.json")).unwrap()).unwrap();
        let company = Uuid::new_v4().to_string();
        let mut receipts = Vec::new();
        let mut body = json!({});
        let kinds: &[&str] = match self.api() {
            Api::Expenses => wanted,
            Api::V1 => &["expenses"],
        };
        for kind in kinds {
            let (list, sent) = self.fresh(&root, spec[kind].as_array().unwrap());
            receipts.extend(sent);
            body[kind] = json!(list);
        }
        Approval { company, body, receipts }
    }

    fn fresh(&self, root: &std::path::Path, samples: &[Value]) -> (Vec<Value>, Vec<(String, SentReceipt)>) {
        let mut receipts = Vec::new();
        let mut expenses = Vec::new();
        for mut expense in samples.iter().cloned() {
            let id = Uuid::new_v4().to_string();
            expense["id"] = json!(id);
            let Some(receipt) = expense.get_mut("receipt").and_then(Value::as_object_mut) else {
                expenses.push(expense);
                continue;
            };
            let bytes = std::fs::read(root.join(receipt.remove("path").unwrap().as_str().unwrap())).unwrap();
            receipt.insert("data".into(), json!(base64::engine::general_purpose::STANDARD.encode(&bytes)));
            receipts.push((
                id,
                SentReceipt {
                    file_name: receipt["fileName"].as_str().unwrap().into(),
                    content_type: receipt["contentType"].as_str().unwrap().into(),
                    bytes,
                },
            ));
            expenses.push(expense);
        }
        (expenses, receipts)
    }

    /// The path a create takes under the API, for faults.
    pub fn create_path(&self, company: &str) -> String {
        match self.api() {
            Api::Expenses => format!("{company}/sync/expenses/expense-transactions"),
            Api::V1 => format!("{company}/sync/expenses/data/expense-transactions"),
        }
    }

    pub async fn approve(&self, company: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}/approval-intake/companies/{company}/expenses", self.api);
        let response = self.http.post(url).json(body).send().await.expect("approval intake reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` as written: for bodies a `Value` cannot hold (exact amounts, bad JSON).
    pub async fn approve_text(&self, company: &str, body: String) -> (u16, Value) {
        let url = format!("{}/approval-intake/companies/{company}/expenses", self.api);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("approval intake reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn expense(&self, company: &str, expense: &str) -> (u16, Value) {
        let url = format!("{}/expense-status/companies/{company}/expenses/{expense}", self.api);
        let response = self.http.get(url).send().await.expect("expense status reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every expense is in a final status; returns their views.
    pub async fn settle(&self, company: &str, ids: &[String], within: Duration) -> Vec<Value> {
        let finals = ["uploaded", "recordedWithoutAttachment", "failed", "uploadFailed", "unconfirmed"];
        let started = Instant::now();
        loop {
            let mut views = Vec::new();
            for id in ids {
                let (status, view) = self.expense(company, id).await;
                assert!(status == 200 || status == 404, "status endpoint answered {status}: {view}");
                views.push(view);
            }
            if views.iter().all(|v| v["status"].as_str().is_some_and(|s| finals.contains(&s))) {
                return views;
            }
            assert!(started.elapsed() < within, "expenses did not settle within {within:?}: {views:#?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every call the sandbox logged for this company.
    pub async fn codat_calls(&self, company: &str) -> Vec<Call> {
        let calls: Vec<Call> =
            self.http.get(format!("{}/_sandbox/calls", self.sandbox)).send().await.unwrap().json().await.unwrap();
        let prefix = format!("/companies/{company}/");
        calls.into_iter().filter(|c| c.path.starts_with(&prefix)).collect()
    }

    pub async fn sandbox_stats(&self, company: &str) -> Value {
        let stats: Value =
            self.http.get(format!("{}/_sandbox/stats", self.sandbox)).send().await.unwrap().json().await.unwrap();
        stats["companies"][company].clone()
    }

    pub async fn inject_fault(&self, fault: Value) {
        let response = self.http.post(format!("{}/_sandbox/faults", self.sandbox)).json(&fault).send().await.unwrap();
        assert!(response.status().is_success());
    }

    pub async fn leave_unreported(&self, transaction: &str) {
        let body = json!({"transactionIds": [transaction]});
        let url = format!("{}/_sandbox/unreported", self.sandbox);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }

    /// Links the company to `platform` (a connection's `platformName`) as its only accounting
    /// software, in place of the sandbox's default Xero.
    pub async fn link_accounting(&self, company: &str, platform: &str) {
        let url = format!("{}/_sandbox/companies/{company}/connections", self.sandbox);
        let response = self.http.put(url).json(&json!({"platformName": platform})).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
    }

    pub async fn drop_webhooks(&self, company: &str, count: u32) {
        let body = json!({"companyId": company, "count": count});
        let url = format!("{}/_sandbox/drop-webhooks", self.sandbox);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }
}

/// Transaction ids of every item Codat took (a v1 dataset, or a current-API create), including
/// creates Codat acted on whose answer was then lost (an `afterEffect` fault). A transfer PUT
/// counts each time Codat took it, create or resend: each is a write to the books.
pub fn created_items(calls: &[Call]) -> Vec<String> {
    let creates = [
        "/data/expense-transactions",
        "/sync/expenses/expense-transactions",
        "/reimbursable-expense-transactions",
        "/adjustment-transactions",
    ];
    let taken = calls.iter().filter(|c| c.handled_status == Some(200));
    let posted = taken
        .clone()
        .filter(|c| c.method == "POST" && creates.iter().any(|p| c.path.ends_with(p)))
        .flat_map(|c| {
            let body = c.body.as_ref().unwrap();
            body.get("items").unwrap_or(body).as_array().unwrap().clone()
        })
        .map(|item| item["id"].as_str().unwrap().to_string());
    let transfers = taken
        .filter(|c| c.method == "PUT" && c.path.contains("/transfer-transactions/"))
        .map(|c| c.path.rsplit('/').next().unwrap().to_string());
    posted.chain(transfers).collect()
}

/// Successful attachment uploads, by transaction id.
pub fn attachments(calls: &[Call]) -> Vec<(String, AttachmentLog)> {
    calls
        .iter()
        .filter(|c| c.path.ends_with("/attachments") && c.status == 200)
        .map(|c| {
            let transaction = c.path.rsplit('/').nth(1).unwrap().to_string();
            (transaction, c.attachment.clone().expect("attachment logged"))
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn count(items: &[String], id: &str) -> usize {
    items.iter().filter(|i| *i == id).count()
}

pub const SETTLE: Duration = Duration::from_secs(90);
