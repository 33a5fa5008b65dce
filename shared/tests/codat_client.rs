//! The Codat client against the spec's own examples and against the sandbox (in process).
#![cfg(feature = "codat")]

use std::time::{Duration, Instant};

use codat_sandbox::{Call, Config};
use expense_sync::codat::v1::ExpenseTransaction;
use expense_sync::codat::*;
use expense_sync::domain::{CompanyId, DatasetId, ExpenseId};
use serde_json::{json, Value};

const KEY: &str = "dGVzdC1rZXk=";

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/codat/Codat-Sync-Expenses-v1.yaml");
    let text = std::fs::read_to_string(path).expect("the v1 spec beside the repository (../shared/codat)");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn schema_example(spec: &Value, schema: &str, example: &str) -> Value {
    spec["components"]["schemas"][schema]["x-examples"][example].clone()
}

#[test]
fn spec_examples_parse_into_the_models() {
    let spec = spec();
    // The list example spells `_links` as `links`; both are accepted.
    let list: Transactions =
        serde_json::from_value(schema_example(&spec, "TransactionMetadataList", "Example 1")).unwrap();
    assert_eq!(list.total_results, 2);
    assert!(list.results.iter().all(Transaction::is_completed_expense));

    // The source document's `expense` counts as an expense; an unknown value is kept.
    let ok: Transaction =
        serde_json::from_value(schema_example(&spec, "TransactionMetadata", "Successful Transaction")).unwrap();
    assert_eq!(ok.integration_type, Some(IntegrationType::Expenses));
    assert!(ok.is_completed_expense());
    let bad: Transaction =
        serde_json::from_value(schema_example(&spec, "TransactionMetadata", "Unsuccessful Transaction")).unwrap();
    assert_eq!(bad.status, Some(TransactionStatus::ValidationError));
    assert_eq!(bad.integration_type, Some(IntegrationType::Other("string".into())));
    assert!(bad.message.unwrap().contains("line item total"));

    for example in ["Success Data Pushed", "Success No Data Pushed"] {
        let status: CompanySyncStatus =
            serde_json::from_value(schema_example(&spec, "CompanySyncStatus", example)).unwrap();
        assert!(status.is_finished(), "{example}");
    }

    // Every documented error response parses as ErrorMessage.
    for (name, response) in spec["components"]["responses"].as_object().unwrap() {
        for (example, body) in response["content"]["application/json"]["examples"].as_object().unwrap() {
            let error: ErrorMessage = serde_json::from_value(body["value"].clone()).unwrap();
            assert!(error.error.is_some() && error.correlation_id.is_some(), "{name}/{example}");
        }
    }

    // The request examples round-trip through ExpenseTransaction field for field.
    let examples = &spec["paths"]["/companies/{companyId}/sync/expenses/data/expense-transactions"]["post"]
        ["requestBody"]["content"]["application/json"]["examples"];
    for name in ["Refund", "Transfer"] {
        let item = examples[name]["value"]["items"][0].clone();
        let parsed: ExpenseTransaction = serde_json::from_value(item.clone()).unwrap();
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(normalise_dates(back), normalise_dates(item), "{name}");
    }
    // The Payment example writes `contactRef.type`, which the schema calls `contactType`:
    // the schema is the contract, so the example's spelling is refused rather than dropped.
    let payment = examples["Payment"]["value"]["items"][0].clone();
    assert!(serde_json::from_value::<ExpenseTransaction>(payment).is_err());
}

fn normalise_dates(mut value: Value) -> Value {
    // Numbers compare as f64: 0 and 0.0 are the same amount.
    if let Some(lines) = value["lines"].as_array_mut() {
        for line in lines {
            for amount in ["netAmount", "taxAmount"] {
                line[amount] = json!(line[amount].as_f64().unwrap());
            }
        }
    }
    value
}

async fn sandbox() -> String {
    codat_sandbox::spawn(Config::for_tests(KEY)).await
}

fn client(base: &str) -> CodatClient {
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(5),
        ..Default::default()
    };
    CodatClient::new(base, KEY, retry).unwrap()
}

fn transaction(id: ExpenseId, net: f64) -> expense_sync::domain::Transaction {
    serde_json::from_value(json!({
        "id": id, "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
        "lines": [{"netAmount": net, "taxAmount": 1.5, "accountRef": {"id": "42"}}]
    }))
    .unwrap()
}

async fn calls(base: &str) -> Vec<Call> {
    reqwest::get(format!("{base}/_sandbox/calls")).await.unwrap().json().await.unwrap()
}

async fn fault(base: &str, fault: Value) {
    reqwest::Client::new().post(format!("{base}/_sandbox/faults")).json(&fault).send().await.unwrap();
}

async fn synced(
    codat: &CodatClient,
    company: CompanyId,
    items: &[expense_sync::domain::Transaction],
) -> expense_sync::domain::SyncId {
    let items: Vec<_> = items.iter().collect();
    let dataset = codat.v1().create_expense_dataset(company, &items).await.unwrap();
    let sync = codat.v1().initiate_sync(company, &[dataset]).await.unwrap();
    for _ in 0..100 {
        if codat.sync_status(company, sync).await.unwrap().is_finished() {
            return sync;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sandbox sync did not finish");
}

#[tokio::test]
async fn the_sync_process_calls_with_the_spec_shapes() {
    let base = sandbox().await;
    let codat = client(&base);
    let company = CompanyId::random();
    let (good, bad) = (ExpenseId::random(), ExpenseId::random());
    let sync = synced(&codat, company, &[transaction(good, 10.0), transaction(bad, -11.5)]).await;

    let mut transactions = codat.sync_transactions(company, sync).await.unwrap();
    transactions.sort_by_key(|t| t.transaction_id.clone());
    assert_eq!(transactions.len(), 2);
    let of = |id: ExpenseId| transactions.iter().find(|t| t.transaction_id == Some(id.to_string())).unwrap();
    assert!(of(good).is_completed_expense());
    assert_eq!(of(bad).status, Some(TransactionStatus::ValidationError));

    let attachment =
        codat.upload_attachment(company, sync, good, "taxi.png", "image/png", b"\x89PNGbytes").await.unwrap();
    assert_eq!(attachment.transaction_id, Some(good.to_string()));

    let log = calls(&base).await;
    let paths: Vec<_> =
        log.iter().map(|c| (c.method.as_str(), c.status, c.path.replace(&company.to_string(), "C"))).collect();
    assert_eq!(paths[0], ("POST", 200, "/companies/C/sync/expenses/data/expense-transactions".into()));
    assert_eq!(paths[1], ("POST", 202, "/companies/C/sync/expenses/syncs".into()));
    assert_eq!(log[1].body.as_ref().unwrap()["datasetIds"].as_array().unwrap().len(), 1);
    let upload = log.iter().find(|c| c.path.ends_with("/attachments")).unwrap();
    let received = upload.attachment.as_ref().unwrap();
    assert_eq!(
        (received.file_name.as_deref(), received.content_type.as_deref()),
        (Some("taxi.png"), Some("image/png"))
    );
    assert_eq!(received.size, 9);
}

#[tokio::test]
async fn every_page_of_transactions_is_read() {
    let base = sandbox().await;
    let codat = client(&base).with_page_size(2);
    let company = CompanyId::random();
    let items: Vec<_> = (0..5).map(|_| transaction(ExpenseId::random(), 3.0)).collect();
    let sync = synced(&codat, company, &items).await;
    let all = codat.sync_transactions(company, sync).await.unwrap();
    assert_eq!(all.len(), 5);
    let pages: Vec<_> = calls(&base).await.into_iter().filter(|c| c.path.ends_with("/transactions")).collect();
    assert_eq!(pages.len(), 3, "5 transactions at 2 per page");
    assert_eq!(pages[2].query.as_deref(), Some("page=3&pageSize=2"));
}

#[tokio::test]
async fn throttling_waits_for_retry_after_then_succeeds() {
    let base = sandbox().await;
    let codat = client(&base);
    let company = CompanyId::random();
    fault(&base, json!({"pathContains": "/data/expense-transactions", "status": 429, "retryAfter": 1, "times": 1}))
        .await;
    let started = Instant::now();
    let dataset: DatasetId =
        codat.v1().create_expense_dataset(company, &[&transaction(ExpenseId::random(), 1.0)]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");
    assert_eq!(codat.calls_made(), 2);
    let _ = dataset;
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_repeated() {
    let base = sandbox().await;
    let codat = client(&base);
    fault(&base, json!({"pathContains": "/data/expense-transactions", "status": 500, "times": 1})).await;
    let err = codat
        .v1()
        .create_expense_dataset(CompanyId::random(), &[&transaction(ExpenseId::random(), 1.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, CodatError::Unavailable { maybe_applied: true, .. }), "{err}");
    assert_eq!(codat.calls_made(), 1, "a 500 on a create must not be retried");
}

#[tokio::test]
async fn reads_are_retried_through_server_errors() {
    let base = sandbox().await;
    let codat = client(&base);
    let company = CompanyId::random();
    let sync = synced(&codat, company, &[transaction(ExpenseId::random(), 1.0)]).await;
    fault(&base, json!({"pathContains": "/transactions", "status": 502, "times": 2})).await;
    assert_eq!(codat.sync_transactions(company, sync).await.unwrap().len(), 1);
}

#[tokio::test]
async fn refusals_carry_codats_error_message() {
    let base = sandbox().await;
    let codat = client(&base);
    let company = CompanyId::random();
    let id = ExpenseId::random();
    codat.v1().create_expense_dataset(company, &[&transaction(id, 1.0)]).await.unwrap();
    // The same transaction id again: Codat's idempotency key refuses it.
    let err = codat.v1().create_expense_dataset(company, &[&transaction(id, 1.0)]).await.unwrap_err();
    let CodatError::Rejected { status, error } = err else { panic!("expected a refusal") };
    assert_eq!(status, 400);
    assert!(error.correlation_id.is_some());
    assert!(error.summary().contains("already been used"), "{}", error.summary());

    let wrong_key = CodatClient::new(&base, "d3Jvbmc=", RetryPolicy::default()).unwrap();
    let err = wrong_key.sync_status(company, expense_sync::domain::SyncId::random()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn an_unreachable_codat_is_reported_as_not_applied() {
    // Nothing listens on port 9 of loopback: every connect fails, so nothing can have been created.
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(10),
        max_elapsed: Duration::from_millis(200),
        ..Default::default()
    };
    let codat = CodatClient::new("http://127.0.0.1:9", KEY, retry).unwrap();
    let err = codat
        .v1()
        .create_expense_dataset(CompanyId::random(), &[&transaction(ExpenseId::random(), 1.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, CodatError::Unavailable { maybe_applied: false, .. }), "{err}");
    assert!(codat.calls_made() > 1, "connection failures are retried");
}
