//! The current Expenses API: our models and mapping against the YAML's own examples, and the
//! client and the lost-answer lookup against the sandbox (in process).
#![cfg(feature = "codat")]

use std::time::Duration;

use base64::Engine;
use codat_sandbox::Config;
use expense_sync::codat::expenses::{self, ExpenseTransaction, ReimbursableExpenseTransaction};
use expense_sync::codat::*;
use expense_sync::domain::{ApprovalBatch, CompanyId, Entry, EntryKind, ExpenseId};
use expense_sync::flows::resolve::find_created_sync;
use serde_json::{json, Value};

const KEY: &str = "dGVzdC1rZXk=";

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/codat/Codat-Sync-Expenses-current.yaml");
    let text = std::fs::read_to_string(path).expect("the current spec beside the repository (../shared/codat)");
    serde_json::to_value(serde_norway::from_str::<serde_norway::Value>(&text).unwrap()).unwrap()
}

fn request_examples(spec: &Value, path: &str) -> Vec<(String, Value)> {
    let examples = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap_or_else(|| panic!("{path} has request examples"));
    examples.iter().map(|(name, example)| (name.clone(), example["value"][0].clone())).collect()
}

/// Amounts compare as numbers: 100 and 100.0 are the same amount.
fn normalise(mut value: Value) -> Value {
    if let Some(lines) = value["lines"].as_array_mut() {
        for line in lines {
            for amount in ["netAmount", "taxAmount"] {
                if let Some(n) = line[amount].as_f64() {
                    line[amount] = json!(n);
                }
            }
        }
    }
    if let Some(rate) = value["currencyRate"].as_f64() {
        value["currencyRate"] = json!(rate);
    }
    value
}

const CARDS: &str = "/companies/{companyId}/sync/expenses/expense-transactions";
const REIMBURSABLES: &str = "/companies/{companyId}/sync/expenses/reimbursable-expense-transactions";

#[test]
fn the_spec_examples_round_trip_through_the_models() {
    let spec = spec();
    for (name, item) in request_examples(&spec, CARDS) {
        let parsed: ExpenseTransaction = serde_json::from_value(item.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(normalise(serde_json::to_value(&parsed).unwrap()), normalise(item), "{name}");
    }
    for (name, item) in request_examples(&spec, REIMBURSABLES) {
        let parsed: ReimbursableExpenseTransaction = serde_json::from_value(item.clone()).unwrap();
        assert_eq!(normalise(serde_json::to_value(&parsed).unwrap()), normalise(item), "{name}");
    }
    // v1's spelling of the contact type is not the current API's.
    let mut v1_shaped = request_examples(&spec, CARDS)[0].1.clone();
    v1_shaped["contactRef"] = json!({"id": "430", "contactType": "Supplier"});
    assert!(serde_json::from_value::<ExpenseTransaction>(v1_shaped).is_err());

    let schemas = &spec["components"]["schemas"];
    let list: Transactions =
        serde_json::from_value(schemas["Transactions"]["x-examples"]["Example 1"].clone()).unwrap();
    assert_eq!(list.total_results, 2);
    assert!(list.results.iter().all(expense_sync::codat::Transaction::is_completed_expense));
    for (example, body) in schemas["CompanySyncStatus"]["x-examples"].as_object().unwrap() {
        let status: CompanySyncStatus = serde_json::from_value(body.clone()).unwrap();
        assert!(status.is_finished(), "{example}");
    }
    for (name, response) in spec["components"]["responses"].as_object().unwrap() {
        for (example, body) in response["content"]["application/json"]["examples"].as_object().into_iter().flatten() {
            let error: ErrorMessage = serde_json::from_value(body["value"].clone()).unwrap();
            assert!(error.error.is_some(), "{name}/{example}");
        }
    }
}

/// The spec's request examples as an approval request, each with a receipt.
fn approval_of_examples(spec: &Value) -> Value {
    let receipt = json!({"fileName": "r.png", "contentType": "image/png",
                         "data": base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\0IEND\xaeB`\x82")});
    let with_receipt = |mut item: Value| {
        item["receipt"] = receipt.clone();
        item
    };
    let cards: Vec<Value> = request_examples(spec, CARDS).into_iter().map(|(_, item)| with_receipt(item)).collect();
    let mut reimbursable = request_examples(spec, REIMBURSABLES)[0].1.clone();
    reimbursable["id"] = json!(ExpenseId::random()); // the example reuses the Payment example's id
    json!({"expenses": cards, "reimbursableExpenses": [with_receipt(reimbursable)]})
}

#[test]
fn what_the_spec_shows_is_accepted_at_intake_and_sent_unchanged() {
    let spec = spec();
    let body = approval_of_examples(&spec);
    let batch = ApprovalBatch::parse(CompanyId::random(), body.to_string().as_bytes(), &expenses::INTAKE).unwrap();
    let strip = |mut item: Value| {
        item.as_object_mut().unwrap().remove("receipt");
        normalise(item)
    };
    for (sent, approved) in body["expenses"].as_array().unwrap().iter().zip(&batch.expenses) {
        let wire = serde_json::to_value(ExpenseTransaction::from(approved.entry.as_transaction().unwrap())).unwrap();
        assert_eq!(normalise(wire), strip(sent.clone()));
    }
    let reimbursable = batch.expenses.last().unwrap();
    let wire = serde_json::to_value(ReimbursableExpenseTransaction::from(reimbursable.entry.as_transaction().unwrap()))
        .unwrap();
    let mut sent = strip(body["reimbursableExpenses"][0].clone());
    // Dates are sent in Codat's date-time form.
    sent["issueDate"] = json!("2024-05-21T00:00:00Z");
    sent["dueDate"] = json!("2024-05-21T00:00:00Z");
    assert_eq!(normalise(wire), sent);

    // The same examples under v1: its schema has none of the new fields, nor reimbursables.
    let refused = ApprovalBatch::parse(CompanyId::random(), body.to_string().as_bytes(), &v1::INTAKE).unwrap_err();
    assert_eq!(refused.field, "reimbursableExpenses");
    let cards_only = json!({"expenses": body["expenses"]});
    let refused =
        ApprovalBatch::parse(CompanyId::random(), cards_only.to_string().as_bytes(), &v1::INTAKE).unwrap_err();
    assert_eq!(refused.field, "expenses[0].bankAccountRef");
}

fn client(base: &str) -> CodatClient {
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(5),
        ..Default::default()
    };
    CodatClient::new(base, KEY, retry).unwrap()
}

fn payment(id: ExpenseId, net: f64) -> Entry {
    serde_json::from_value(json!({
        "id": id, "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
        "lines": [{"netAmount": net, "accountRef": {"id": "42"}}]
    }))
    .unwrap()
}

async fn fault(base: &str, fault: Value) {
    reqwest::Client::new().post(format!("{base}/_sandbox/faults")).json(&fault).send().await.unwrap();
}

#[tokio::test]
async fn a_create_answers_the_sync_codat_queued_and_its_transactions_settle() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    let (good, bad) = (ExpenseId::random(), ExpenseId::random());
    let sync = codat.expenses().create(company, &[&payment(good, 10.0), &payment(bad, 0.0)]).await.unwrap();
    for _ in 0..200 {
        if codat.sync_status(company, sync).await.unwrap().is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let transactions = codat.sync_transactions(company, sync).await.unwrap();
    let of = |id: ExpenseId| transactions.iter().find(|t| t.expense_id() == Some(id)).unwrap();
    assert!(of(good).is_completed_expense());
    assert_eq!(of(bad).status, Some(TransactionStatus::ValidationError));
    let latest = codat.expenses().latest_sync_status(company).await.unwrap().unwrap();
    assert_eq!(latest.sync_id, Some(sync.to_string()));
    assert_eq!(codat.expenses().latest_sync_status(CompanyId::random()).await.unwrap(), None);
}

#[tokio::test]
async fn a_lost_create_answer_is_found_in_codats_sync_lists_and_a_create_never_made_is_not() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    let sent_at = chrono::Utc::now();
    let taken = ExpenseId::random();
    fault(&base, json!({"pathContains": "/expense-transactions", "status": 500, "afterEffect": true})).await;
    let err = codat.expenses().create(company, &[&payment(taken, 5.0)]).await.unwrap_err();
    assert!(matches!(err, CodatError::Unavailable { maybe_applied: true, .. }), "{err}");
    let (sync, held) = find_created_sync(&codat, company, &[taken], sent_at).await.unwrap().expect("Codat took it");
    assert_eq!(held, vec![taken]);
    assert!(codat.sync_transactions(company, sync).await.unwrap().iter().any(|t| t.expense_id() == Some(taken)));

    // A 500 answered before Codat acted: no sync holds the transaction.
    let lost = ExpenseId::random();
    fault(&base, json!({"pathContains": "/expense-transactions", "status": 500})).await;
    assert!(codat.expenses().create(company, &[&payment(lost, 5.0)]).await.is_err());
    assert_eq!(find_created_sync(&codat, company, &[lost], sent_at).await.unwrap(), None);
    // Nor does any sync older than the create count.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(find_created_sync(&codat, company, &[taken], later).await.unwrap(), None);
}

#[tokio::test]
async fn reimbursable_expenses_go_to_their_own_endpoint() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    let body = approval_of_examples(&spec());
    let batch = ApprovalBatch::parse(company, body.to_string().as_bytes(), &expenses::INTAKE).unwrap();
    let claim = batch.expenses.last().unwrap();
    assert_eq!(claim.entry.kind(), EntryKind::Reimbursable);
    codat.expenses().create(company, &[&claim.entry]).await.unwrap();
    let calls: Vec<codat_sandbox::Call> =
        reqwest::get(format!("{base}/_sandbox/calls")).await.unwrap().json().await.unwrap();
    assert!(calls[0].path.ends_with("/reimbursable-expense-transactions"), "{:?}", calls[0]);
    assert_eq!(calls[0].status, 200);
}

#[tokio::test]
async fn a_lost_create_is_found_however_many_syncs_came_after_it() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    let sent_at = chrono::Utc::now();
    let lost = ExpenseId::random();
    fault(&base, json!({"pathContains": "/expense-transactions", "status": 500, "afterEffect": true})).await;
    assert!(codat.expenses().create(company, &[&payment(lost, 5.0)]).await.is_err());
    // Busy company: more syncs follow before anyone asks.
    for _ in 0..25 {
        codat.expenses().create(company, &[&payment(ExpenseId::random(), 1.0)]).await.unwrap();
    }
    let (_, held) = find_created_sync(&codat, company, &[lost], sent_at).await.unwrap().expect("found");
    assert_eq!(held, vec![lost]);
}

#[tokio::test]
async fn a_retry_refused_after_an_unavailable_answer_counts_as_maybe_applied() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    let sent_at = chrono::Utc::now();
    let id = ExpenseId::random();
    // Codat acts, answers 503; the retry is refused because the id is now used.
    fault(&base, json!({"pathContains": "/expense-transactions", "status": 503, "afterEffect": true})).await;
    let err = codat.expenses().create(company, &[&payment(id, 5.0)]).await.unwrap_err();
    assert!(matches!(err, CodatError::Unavailable { maybe_applied: true, .. }), "{err}");
    assert!(err.to_string().contains("after an earlier attempt was answered 503"), "{err}");
    assert!(find_created_sync(&codat, company, &[id], sent_at).await.unwrap().is_some());
    // A refusal with no unavailable answer before it stays a refusal.
    let err = codat.expenses().create(company, &[&payment(id, 5.0)]).await.unwrap_err();
    assert!(matches!(err, CodatError::Rejected { status: 400, .. }), "{err}");
}

#[tokio::test]
async fn a_slow_codat_never_keeps_a_call_past_its_retry_budget() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let retry = RetryPolicy { max_elapsed: Duration::from_secs(2), ..Default::default() };
    let codat = CodatClient::new(&base, KEY, retry).unwrap();
    let company = CompanyId::random();
    // Every answer takes 10 s: far longer than the budget; the attempt timeout used to be 25 s.
    fault(&base, json!({"pathContains": "/syncs/list/status", "delayMs": 10_000, "times": 5})).await;
    let started = std::time::Instant::now();
    let err = codat.expenses().list_sync_statuses(company).await.unwrap_err();
    assert!(matches!(err, CodatError::Unavailable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(3500), "gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_503_is_retried_only_for_creates_codat_would_refuse_to_repeat() {
    let base = codat_sandbox::spawn(Config::for_tests(KEY)).await;
    let codat = client(&base);
    let company = CompanyId::random();
    // Codat acted, then a gateway answered 503: an upload sent again attaches the receipt twice.
    fault(&base, json!({"pathContains": "/attachments", "status": 503, "times": 1})).await;
    let before = codat.calls_made();
    let sync = expense_sync::domain::SyncId::random();
    let err = codat.upload_attachment(company, sync, ExpenseId::random(), "r.png", "image/png", b"png").await;
    assert!(matches!(err, Err(CodatError::Unavailable { maybe_applied: true, .. })), "{err:?}");
    assert_eq!(codat.calls_made() - before, 1, "an upload answered 503 is not sent again");

    // An expense create is: a repeat of one Codat took is refused, never taken twice.
    fault(&base, json!({"pathContains": "/expense-transactions", "status": 503, "times": 1})).await;
    let before = codat.calls_made();
    codat.expenses().create(company, &[&payment(ExpenseId::random(), 5.0)]).await.unwrap();
    assert_eq!(codat.calls_made() - before, 2);
}
