//! Switching a deployment from v1 to the current API strands nothing: expenses approved on v1
//! (datasets pending, syncs running) finish on v1's paths while new approvals take the current
//! API, side by side in one table. The approvals here are made through the intake flow with the
//! API named explicitly; the functions of the local environment (whatever their `CODAT_API`)
//! then carry both through stream and webhook to the end.
#![cfg(all(feature = "codat", feature = "store", feature = "receipts"))]

use std::time::{Duration, Instant};

use base64::Engine;
use expense_sync::codat::{self, CodatClient};
use expense_sync::domain::*;
use expense_sync::flows::intake::approve;
use expense_sync::receipts::ReceiptStore;
use expense_sync::store::Store;
use serde_json::{json, Value};

/// The smallest PNG intake takes: signature, IHDR, IEND.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\0IEND\xaeB`\x82";

fn batch(company: CompanyId, api: CodatApi, kind: &str) -> ApprovalBatch {
    let expenses: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "id": ExpenseId::random(), "type": kind, "issueDate": "2024-05-21", "currency": "GBP",
                "lines": [{"netAmount": 10 + i, "taxAmount": 2, "accountRef": {"id": "42"}}],
                "receipt": {"fileName": "r.png", "contentType": "image/png",
                            "data": base64::engine::general_purpose::STANDARD.encode(PNG)}
            })
        })
        .collect();
    let body = json!({ "expenses": expenses }).to_string();
    ApprovalBatch::parse(company, body.as_bytes(), codat::intake_rules(api)).unwrap()
}

async fn settled(store: &Store, company: CompanyId, ids: &[ExpenseId]) -> Vec<Expense> {
    let started = Instant::now();
    loop {
        let expenses = store.get_expenses(company, ids).await.unwrap();
        if expenses.len() == ids.len() && expenses.iter().all(|e| e.status.is_final()) {
            return expenses;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "not settled: {expenses:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn v1_work_under_way_finishes_on_v1_while_new_approvals_use_the_current_api() {
    let config = expense_sync::aws::sdk_config().await;
    let store = Store::from_env(&config).unwrap();
    let receipts = ReceiptStore::from_env(&config).unwrap();
    let key = std::env::var("CODAT_API_KEY").expect("CODAT_API_KEY: run `local/devenv.py test`");
    let codat = CodatClient::from_env(&key, Duration::from_secs(10)).unwrap();
    let company = CompanyId::random();

    // Before the switch: a TransferIn (v1 only) and two payments, approved on v1.
    let before = batch(company, CodatApi::V1, "TransferIn");
    let old = approve(&before, CodatApi::V1, &store, &receipts, &codat, None).await.unwrap();
    assert!(old.expenses.iter().all(|e| e.api == CodatApi::V1 && e.dataset_id.is_some()), "{:#?}", old.expenses);
    // After it: the same company's next approvals go to the current API.
    let after = batch(company, CodatApi::Expenses, "Payment");
    let new = approve(&after, CodatApi::Expenses, &store, &receipts, &codat, None).await.unwrap();
    assert!(new.expenses.iter().all(|e| e.api == CodatApi::Expenses && e.status == Status::Syncing));

    let old_ids: Vec<_> = old.expenses.iter().map(|e| e.expense_id).collect();
    let new_ids: Vec<_> = new.expenses.iter().map(|e| e.expense_id).collect();
    for expense in settled(&store, company, &[old_ids.clone(), new_ids.clone()].concat()).await {
        assert_eq!(expense.status, Status::Uploaded, "{expense:#?}");
    }

    // Each went to Codat once, through its own API's create; only v1's needed an initiate.
    let sandbox = std::env::var("SANDBOX_URL").unwrap();
    let calls: Vec<Value> = reqwest::get(format!("{sandbox}/_sandbox/calls")).await.unwrap().json().await.unwrap();
    let ours: Vec<&Value> =
        calls.iter().filter(|c| c["path"].as_str().unwrap().starts_with(&format!("/companies/{company}/"))).collect();
    let posted_to = |id: &ExpenseId| -> Vec<String> {
        ours.iter()
            .filter(|c| c["method"] == "POST" && c["status"] == 200 && c["body"].to_string().contains(&id.to_string()))
            .map(|c| c["path"].as_str().unwrap().rsplit("/sync/expenses/").next().unwrap().to_string())
            .collect()
    };
    for id in &old_ids {
        assert_eq!(posted_to(id), vec!["data/expense-transactions"], "{id}");
    }
    for id in &new_ids {
        assert_eq!(posted_to(id), vec!["expense-transactions"], "{id}");
    }
    assert_eq!(ours.iter().filter(|c| c["path"].as_str().unwrap().ends_with("/syncs")).count(), 1);
}
