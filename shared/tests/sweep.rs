//! The schedule sweep against moto and the sandbox the local environment runs.
#![cfg(all(feature = "store", feature = "codat"))]

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use expense_sync::codat::{CodatClient, ExpenseTransaction};
use expense_sync::domain::*;
use expense_sync::flows::sweep::{sweep, Patience};
use expense_sync::store::Store;

fn expense(company: CompanyId, status: Status, updated: chrono::DateTime<Utc>) -> Expense {
    let id = ExpenseId::random();
    let transaction: ExpenseTransaction = serde_json::from_value(serde_json::json!({
        "id": id, "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
        "lines": [{"netAmount": 1, "taxAmount": 0, "accountRef": {"id": "42"}}]
    }))
    .unwrap();
    Expense {
        company_id: company,
        expense_id: id,
        status,
        transaction,
        receipt: ReceiptRef {
            key: "k".into(),
            file_name: "r.png".into(),
            content_type: "image/png".into(),
            size: 1,
            sha256: "s".into(),
        },
        fingerprint: "f".into(),
        dataset_id: None,
        sync_id: Some(SyncId::random()),
        attachment_id: None,
        failure: None,
        approved_at: updated,
        updated_at: updated,
    }
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn claims_older_than_any_invocation_become_unconfirmed_and_fresh_ones_stay() {
    let config = expense_sync::aws::sdk_config().await;
    let store = Store::from_env(&config).unwrap();
    let codat = CodatClient::from_env(&std::env::var("CODAT_API_KEY").unwrap(), StdDuration::from_secs(5)).unwrap();
    let company = CompanyId::random();
    let hour_ago = Utc::now() - Duration::hours(1);
    let dead_submit = expense(company, Status::Submitting, hour_ago);
    let dead_upload = expense(company, Status::Uploading, hour_ago);
    let live_upload = expense(company, Status::Uploading, Utc::now());
    store.insert_expenses(&[dead_submit.clone(), dead_upload.clone(), live_upload.clone()]).await.unwrap();

    // Approved expenses are left to the scheduled sweep (a day's grace); claims expire after 30 min.
    let patience = Patience {
        poll_after: Duration::days(1),
        claim_timeout: Duration::minutes(30),
        report_grace: Duration::days(1),
    };
    let report = sweep(&store, &codat, patience).await.unwrap();
    assert!(report.claims_expired >= 2, "{report:?}");

    let status = |e: &Expense| {
        let store = &store;
        let (company, id) = (e.company_id, e.expense_id);
        async move { store.get_expense(company, id).await.unwrap().unwrap() }
    };
    let submit = status(&dead_submit).await;
    assert_eq!(submit.status, Status::Unconfirmed);
    assert_eq!(submit.failure.unwrap().stage, Stage::Submission);
    let upload = status(&dead_upload).await;
    assert_eq!((upload.status, upload.failure.unwrap().stage), (Status::Unconfirmed, Stage::Upload));
    assert_eq!(status(&live_upload).await.status, Status::Uploading);
}
