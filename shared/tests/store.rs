//! The DynamoDB store against moto server, in tables `local/devenv.py test` creates from
//! template.yaml that no function watches (`STORE_TEST_TABLE`, and `SWEEP_TEST_TABLE` for the
//! sweep), so what a test reads is the store's doing alone. Each test uses its own company, so
//! tests share a table safely.
#![cfg(feature = "store")]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use expense_sync::domain::*;
use expense_sync::store::{Store, StoreError};
use uuid::Uuid;

async fn store() -> Store {
    store_in("STORE_TEST_TABLE").await
}

/// The store over the table the environment variable `variable` names.
async fn store_in(variable: &str) -> Store {
    let config = expense_sync::aws::sdk_config().await;
    let table = std::env::var(variable).unwrap_or_else(|_| panic!("{variable}: run `local/devenv.py test`"));
    Store::new(aws_sdk_dynamodb::Client::new(&config), table)
}

fn expense(company: CompanyId) -> Expense {
    expense_at(company, Status::Approved, Utc::now())
}

fn expense_at(company: CompanyId, status: Status, updated: chrono::DateTime<Utc>) -> Expense {
    let id = ExpenseId::random();
    let transaction: Transaction = serde_json::from_value(serde_json::json!({
        "id": id, "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP",
        "lines": [{"netAmount": 10.5, "taxAmount": 2.1, "accountRef": {"id": "42"}}]
    }))
    .unwrap();
    Expense {
        company_id: company,
        expense_id: id,
        status,
        api: CodatApi::Expenses,
        entry: Entry::Transaction(transaction),
        receipt: Some(ReceiptRef {
            key: format!("receipts/{company}/{id}"),
            file_name: "taxi.png".into(),
            content_type: "image/png".into(),
            size: 3,
            sha256: "abc".into(),
        }),
        fingerprint: "f".into(),
        dataset_id: None,
        sync_id: (status == Status::Uploading).then(SyncId::random),
        attachment_id: None,
        failure: None,
        note: None,
        approved_at: updated,
        updated_at: updated,
    }
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn an_expense_round_trips_and_is_created_once() {
    let store = store().await;
    let e = expense(CompanyId::random());
    let first = store.insert_expenses(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(first.created, vec![e.expense_id]);
    let again = store.insert_expenses(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(again.existing, vec![e.expense_id]);
    let stored = store.get_expense(e.company_id, e.expense_id).await.unwrap().unwrap();
    assert_eq!(stored, Expense { approved_at: stored.approved_at, updated_at: stored.updated_at, ..e.clone() });
    assert_eq!(stored.entry.as_transaction().unwrap().lines[0].net_amount.to_string(), "10.5");
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn of_concurrent_claims_exactly_one_wins() {
    let store = Arc::new(store().await);
    let e = expense(CompanyId::random());
    store.insert_expenses(std::slice::from_ref(&e)).await.unwrap();
    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, e) = (store.clone(), e.clone());
        claims.spawn(async move { store.apply(&e, &e.transition(Event::SubmissionStarted).unwrap()).await });
    }
    let results = claims.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::Conflict(_)))));
    let stored = store.get_expense(e.company_id, e.expense_id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Submitting);
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn a_transition_writes_its_fields_and_a_batch_claim_is_all_or_nothing() {
    let store = store().await;
    let company = CompanyId::random();
    let (a, b) = (expense(company), expense(company));
    store.insert_expenses(&[a.clone(), b.clone()]).await.unwrap();
    // b is claimed elsewhere first: claiming both together must change neither.
    store.apply(&b, &b.transition(Event::SubmissionStarted).unwrap()).await.unwrap();
    let claims =
        [(&a, a.transition(Event::SubmissionStarted).unwrap()), (&b, b.transition(Event::SubmissionStarted).unwrap())];
    assert!(matches!(store.apply_all(&claims).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_expense(company, a.expense_id).await.unwrap().unwrap().status, Status::Approved);

    let mut b = store.get_expense(company, b.expense_id).await.unwrap().unwrap();
    let failure = Failure::new(Stage::Submission, "Codat refused: currency");
    let t = b.transition(Event::SubmissionRejected(failure.clone())).unwrap();
    store.apply(&b, &t).await.unwrap();
    b.apply(&t, Utc::now());
    let stored = store.get_expense(company, b.expense_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.failure), (Status::Failed, Some(failure)));
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn the_sync_lock_admits_one_holder_until_released_or_expired() {
    let store = store().await;
    let company = CompanyId::random();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(store.acquire_lock(company, first, Duration::minutes(5)).await.unwrap());
    assert!(!store.acquire_lock(company, second, Duration::minutes(5)).await.unwrap());
    assert!(!store.release_lock(company, LockHolder::Initiation(second)).await.unwrap(), "not the holder");
    assert!(store.release_lock(company, LockHolder::Initiation(first)).await.unwrap());
    // A holder that died leaves a lease that runs out.
    assert!(store.acquire_lock(company, first, Duration::seconds(-1)).await.unwrap());
    assert!(store.acquire_lock(company, second, Duration::minutes(5)).await.unwrap());
    assert_eq!(store.get_lock(company).await.unwrap().unwrap().holder, LockHolder::Initiation(second));
    // An initiation that lost Codat's answer shortens its lease; whoever takes over is told
    // whose lock it replaced, so it looks for that initiation's sync before posting again.
    let third = Uuid::new_v4();
    assert!(store.take_lock(company, third, Duration::minutes(5)).await.unwrap().is_none(), "still held");
    let soon = chrono::Utc::now() - Duration::seconds(1);
    assert!(store.shorten_lock(company, LockHolder::Initiation(second), soon).await.unwrap());
    let replaced = store.take_lock(company, third, Duration::minutes(5)).await.unwrap().expect("taken");
    assert_eq!(replaced.map(|lock| lock.holder), Some(LockHolder::Initiation(second)));
    store.release_lock(company, LockHolder::Initiation(third)).await.unwrap();
    assert_eq!(store.take_lock(company, first, Duration::minutes(5)).await.unwrap(), Some(None), "nothing replaced");
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn datasets_move_from_pending_into_one_sync_and_the_sync_finishes_once() {
    let store = store().await;
    let company = CompanyId::random();
    let e = expense(company);
    store.insert_expenses(std::slice::from_ref(&e)).await.unwrap();
    let claim = e.transition(Event::SubmissionStarted).unwrap();
    store.apply(&e, &claim).await.unwrap();
    let mut e = e;
    e.apply(&claim, Utc::now());
    let dataset = Dataset {
        company_id: company,
        dataset_id: DatasetId::random(),
        expense_ids: vec![e.expense_id],
        status: DatasetStatus::Pending,
        sync_id: None,
        created_at: Utc::now(),
    };
    let created = e.transition(Event::DatasetCreated { dataset_id: dataset.dataset_id }).unwrap();
    store.record_dataset(&dataset, &[(&e, created)]).await.unwrap();
    assert_eq!(store.pending_datasets(company).await.unwrap(), vec![dataset.clone()]);
    assert!(store.companies_with_pending_datasets().await.unwrap().contains(&company));

    let token = Uuid::new_v4();
    assert!(store.acquire_lock(company, token, Duration::minutes(5)).await.unwrap());
    let sync = Sync {
        company_id: company,
        sync_id: SyncId::random(),
        api: CodatApi::V1,
        dataset_ids: vec![dataset.dataset_id],
        expense_ids: vec![e.expense_id],
        state: SyncState::Running,
        started_at: Utc::now() - Duration::minutes(10),
        finished_at: None,
    };
    store.start_sync(&sync, token, Duration::hours(1)).await.unwrap();
    assert!(store.pending_datasets(company).await.unwrap().is_empty());
    assert!(!store.companies_with_pending_datasets().await.unwrap().contains(&company));
    assert_eq!(store.get_lock(company).await.unwrap().unwrap().holder, LockHolder::Sync(sync.sync_id));
    // The same datasets cannot go into a second sync.
    let second = Sync { sync_id: SyncId::random(), ..sync.clone() };
    assert!(store.acquire_lock(company, token, Duration::seconds(-1)).await.is_ok());
    assert!(store.start_sync(&second, token, Duration::hours(1)).await.is_err());

    assert!(store.running_syncs(Utc::now()).await.unwrap().iter().any(|s| s.sync_id == sync.sync_id));
    assert!(store.finish_sync(&sync).await.unwrap());
    assert!(!store.finish_sync(&sync).await.unwrap(), "a second finish is a no-op");
    assert!(!store.running_syncs(Utc::now()).await.unwrap().iter().any(|s| s.sync_id == sync.sync_id));
    assert!(store.get_lock(company).await.unwrap().is_none(), "a finished v1 sync releases the lock");

    // The finished sync and the dataset it took expire in 30 days; the expense does not.
    let in_30_days = (Utc::now() + Duration::days(30)).timestamp();
    for sk in [format!("SYNC#{}", sync.sync_id), format!("DATASET#{}", dataset.dataset_id)] {
        let ttl = raw_item(company, &sk).await["ttl"].as_n().unwrap().parse::<i64>().unwrap();
        assert!((in_30_days - 60..=in_30_days).contains(&ttl), "{sk} expires at {ttl}");
    }
    assert!(!raw_item(company, &format!("EXPENSE#{}", e.expense_id)).await.contains_key("ttl"));
}

/// A company's item in the store test table as DynamoDB holds it.
async fn raw_item(company: CompanyId, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    let (client, table) = raw_table().await;
    let key = [("pk", format!("COMPANY#{company}")), ("sk", sk.to_string())]
        .map(|(name, value)| (name.to_string(), AttributeValue::S(value)));
    let out = client.get_item().table_name(table).set_key(Some(key.into())).send().await.unwrap();
    out.item.unwrap_or_else(|| panic!("{sk} is not stored"))
}

async fn raw_table() -> (aws_sdk_dynamodb::Client, String) {
    let config = expense_sync::aws::sdk_config().await;
    (aws_sdk_dynamodb::Client::new(&config), std::env::var("STORE_TEST_TABLE").unwrap())
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn what_the_old_sweep_index_listed_moves_to_the_sharded_one() {
    let store = store().await;
    let company = CompanyId::random();
    let hour_ago = Utc::now() - Duration::hours(1);
    let e = expense_at(company, Status::Approved, hour_ago);
    store.insert_expenses(std::slice::from_ref(&e)).await.unwrap();
    let listed = |expenses: Vec<Expense>| expenses.iter().any(|x| x.expense_id == e.expense_id);
    assert!(listed(store.stale_approved_expenses(Utc::now()).await.unwrap()));

    // As a release before the sharded index wrote it.
    let (client, table) = raw_table().await;
    let legacy_at = format!("{}#{company}", hour_ago.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    client
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("COMPANY#{company}")))
        .key("sk", AttributeValue::S(format!("EXPENSE#{}", e.expense_id)))
        .update_expression("SET sweepPk = :kind, sweepSk = :at REMOVE sweepShard, sweepAt")
        .expression_attribute_values(":kind", AttributeValue::S("approvedExpense".into()))
        .expression_attribute_values(":at", AttributeValue::S(legacy_at.clone()))
        .send()
        .await
        .unwrap();
    assert!(!listed(store.stale_approved_expenses(Utc::now()).await.unwrap()));

    assert!(store.migrate_legacy_sweep().await.unwrap() >= 1);
    assert!(listed(store.stale_approved_expenses(Utc::now()).await.unwrap()), "listed again, as old as it was");
    assert!(!listed(store.stale_approved_expenses(hour_ago).await.unwrap()));
    let item = raw_item(company, &format!("EXPENSE#{}", e.expense_id)).await;
    assert!(!item.contains_key("sweepPk") && !item.contains_key("sweepSk"));
    assert_eq!(item["sweepAt"].as_s().unwrap(), &legacy_at);

    // The next transition leaves the sweep; a legacy entry would have left too.
    let claim = e.transition(Event::SubmissionStarted).unwrap();
    store.apply(&e, &claim).await.unwrap();
    assert!(!listed(store.stale_approved_expenses(Utc::now()).await.unwrap()));
}

#[tokio::test]
#[ignore = "needs moto: run `local/devenv.py test`"]
async fn a_sync_the_current_api_created_is_recorded_with_its_expenses_and_takes_no_lock() {
    let store = store().await;
    let company = CompanyId::random();
    let expenses = [expense(company), expense(company)];
    store.insert_expenses(&expenses).await.unwrap();
    let claims: Vec<_> = expenses.iter().map(|e| (e, e.transition(Event::SubmissionStarted).unwrap())).collect();
    store.apply_all(&claims).await.unwrap();
    let claimed: Vec<Expense> = expenses.iter().map(|e| Expense { status: Status::Submitting, ..e.clone() }).collect();
    let sync = Sync {
        company_id: company,
        sync_id: SyncId::random(),
        api: CodatApi::Expenses,
        dataset_ids: Vec::new(),
        expense_ids: claimed.iter().map(|e| e.expense_id).collect(),
        state: SyncState::Running,
        started_at: Utc::now() - Duration::minutes(10),
        finished_at: None,
    };
    let event = Event::SyncCreated { sync_id: sync.sync_id };
    let moves: Vec<_> = claimed.iter().map(|e| (e, e.transition(event.clone()).unwrap())).collect();
    store.record_created_sync(&sync, &moves).await.unwrap();
    for e in &claimed {
        let stored = store.get_expense(company, e.expense_id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.sync_id), (Status::Syncing, Some(sync.sync_id)));
    }
    // Recording it again (a lost answer resolved twice) changes nothing.
    assert!(matches!(store.record_created_sync(&sync, &moves).await, Err(StoreError::Conflict(_))));
    assert!(store.get_lock(company).await.unwrap().is_none());
    assert_eq!(store.get_sync(company, sync.sync_id).await.unwrap().unwrap(), sync);
    assert!(store.running_syncs(Utc::now()).await.unwrap().iter().any(|s| s.sync_id == sync.sync_id));
    assert!(store.finish_sync(&sync).await.unwrap());
}

#[cfg(feature = "codat")]
#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn claims_older_than_any_invocation_are_settled_and_fresh_ones_stay() {
    // The sweep acts on every company of its table: this test has a table of its own.
    let store = store_in("SWEEP_TEST_TABLE").await;
    let codat = expense_sync::codat::CodatClient::from_env(
        &std::env::var("CODAT_API_KEY").unwrap(),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let company = CompanyId::random();
    let hour_ago = Utc::now() - Duration::hours(1);
    let dead_submit = Expense { api: CodatApi::V1, ..expense_at(company, Status::Submitting, hour_ago) };
    let dead_upload = expense_at(company, Status::Uploading, hour_ago);
    let live_upload = expense_at(company, Status::Uploading, Utc::now());
    // Current API: one create Codat took (its answer lost), one it never received.
    let taken = expense_at(company, Status::Submitting, hour_ago);
    let never_sent = expense_at(company, Status::Submitting, hour_ago);
    let sync_id = codat.expenses().create(company, &[&taken.entry]).await.unwrap();
    store
        .insert_expenses(&[
            dead_submit.clone(),
            dead_upload.clone(),
            live_upload.clone(),
            taken.clone(),
            never_sent.clone(),
        ])
        .await
        .unwrap();

    // A sync Codat never says is finished (here: it cannot be asked, it does not know the id).
    let two_days_ago = Utc::now() - Duration::days(2);
    let stuck = expense_at(company, Status::Submitting, two_days_ago);
    let never_finished = expense_sync::domain::Sync {
        company_id: company,
        sync_id: SyncId::random(),
        api: CodatApi::Expenses,
        dataset_ids: Vec::new(),
        expense_ids: vec![stuck.expense_id],
        state: SyncState::Running,
        started_at: two_days_ago,
        finished_at: None,
    };
    // An expense whose upload's stream record was lost two days ago.
    let forgotten = expense_at(company, Status::Synced, two_days_ago);
    store.insert_expenses(&[stuck.clone(), forgotten.clone()]).await.unwrap();
    let created = stuck.transition(Event::SyncCreated { sync_id: never_finished.sync_id }).unwrap();
    store.record_created_sync(&never_finished, &[(&stuck, created)]).await.unwrap();

    // Approved expenses are left to the scheduled sweep (a day's grace); claims expire after 30 min.
    let patience = expense_sync::flows::sweep::Patience {
        poll_after: Duration::days(1),
        claim_timeout: Duration::minutes(30),
        report_grace: Duration::days(1),
        sync_deadline: Duration::hours(30),
    };
    let deadline = expense_sync::flows::deadline::Deadline::NONE;
    let report = expense_sync::flows::sweep::sweep(&store, &codat, patience, deadline).await.unwrap();
    assert!(report.claims_expired >= 3, "{report:?}");
    assert_eq!(report.creates_resolved, 1, "{report:?}");
    assert!(report.uploads_requeued >= 1 && report.syncs_finished >= 1, "{report:?}");

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
    // Codat's sync lists decided both current-API claims: no person needs to check them.
    let taken = status(&taken).await;
    assert_eq!(taken.sync_id, Some(sync_id));
    assert_eq!(taken.status, Status::Syncing);
    let never_sent = status(&never_sent).await;
    assert_eq!((never_sent.status, never_sent.failure), (Status::Approved, None), "submitted again by the sweep");
    // The overdue sync is closed and says why; its company is free again.
    let stuck = status(&stuck).await;
    assert_eq!(stuck.status, Status::Unconfirmed);
    let reason = stuck.failure.unwrap().reason;
    assert!(reason.contains("did not finish this sync within 30 hours"), "{reason}");
    let closed = store.get_sync(company, never_finished.sync_id).await.unwrap().unwrap();
    assert_eq!(closed.state, SyncState::Finished);
    // The forgotten upload is requeued: rewritten (a new stream record), still synced.
    let requeued = status(&forgotten).await;
    assert_eq!(requeued.status, Status::Synced);
    assert!(requeued.updated_at > forgotten.updated_at);
}
