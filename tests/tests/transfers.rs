//! Issue 13: transfers and adjustments, kinds of their own on Codat's current Expenses API,
//! through the whole flow. Codat attaches no file to them, so they end
//! `recordedWithoutAttachment`; their ids are idempotency keys like an expense's, which
//! matters most for a transfer, whose PUT creates *or updates*.

mod common;

use common::{attachments, count, created_items, Api, Approval, Stack, SETTLE};
use serde_json::{json, Value};

const RECORDED: &str = "recordedWithoutAttachment";

/// Just the transfer and the adjustment of the samples, under a fresh company.
fn transfer_and_adjustment(stack: &Stack) -> Approval {
    stack.sample_of_every_kind().only(&["transfers", "adjustments"])
}

/// How often the sandbox saw each kind of PUT for a transfer id.
async fn transfer_writes(stack: &Stack, company: &str, id: &str) -> (u64, u64, u64) {
    let stats = stack.sandbox_stats(company).await;
    let writes = &stats["transfers"][id];
    let n = |key: &str| writes[key].as_u64().unwrap_or(0);
    (n("creates"), n("resends"), n("updates"))
}

fn status_of(views: &[Value], id: &str) -> String {
    let view = views.iter().find(|v| v["expenseId"] == id).unwrap_or_else(|| panic!("no view of {id}: {views:#?}"));
    view["status"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn every_kind_reaches_its_end_with_a_receipt_only_where_codat_takes_one() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return; // v1 takes transfers and adjustments as expense types: `flow.rs` covers them.
    }
    let approval = stack.sample_of_every_kind();
    let company = approval.company.clone();
    let (status, answer) = stack.approve(&company, &approval.body).await;
    assert_eq!(status, 202, "{answer}");

    let views = stack.settle(&company, &approval.ids(), SETTLE).await;
    let with_receipt: Vec<String> = approval.receipts.iter().map(|(id, _)| id.clone()).collect();
    for view in &views {
        let id = view["expenseId"].as_str().unwrap();
        if with_receipt.iter().any(|r| r == id) {
            assert_eq!(view["status"], "uploaded", "{view}");
        } else {
            assert_eq!(view["status"], RECORDED, "{view}");
            assert!(view["receipt"].is_null() && view["attachmentId"].is_null(), "{view}");
        }
    }
    let kinds: Vec<&str> = views.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["expense", "expense", "expense", "reimbursable", "transfer", "adjustment"]);

    let calls = stack.codat_calls(&company).await;
    let items = created_items(&calls);
    for id in approval.ids() {
        assert_eq!(count(&items, &id), 1, "{id} must reach Codat exactly once");
    }
    let uploads = attachments(&calls);
    assert_eq!(uploads.len(), with_receipt.len(), "a receipt for each expense, none for the others");
    let transfer = &approval.ids_of("transfers")[0];
    assert_eq!(transfer_writes(&stack, &company, transfer).await, (1, 0, 0));

    // The transfer went to its own endpoint, by its id, with the amounts exactly as approved.
    let put = calls.iter().find(|c| c.method == "PUT").expect("the transfer was PUT");
    assert!(put.path.ends_with(&format!("/sync/expenses/transfer-transactions/{transfer}")), "{}", put.path);
    let sent: Value = serde_json::from_str(put.raw_body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["from"]["accountRef"]["id"], "bank-main");
    let approved_amount = approval.body["transfers"][0]["from"]["amount"].to_string();
    assert!(put.raw_body.as_deref().unwrap().contains(&format!(r#""amount":{approved_amount}"#)), "{:?}", put.raw_body);
    assert!(sent.get("id").is_none(), "the id is the path's, not the body's");
    let adjustment = &approval.ids_of("adjustments")[0];
    let post = calls.iter().find(|c| c.path.ends_with("/adjustment-transactions")).expect("the adjustment was posted");
    let lines = &post.body.as_ref().unwrap()[0]["lines"];
    assert_eq!(
        (post.body.as_ref().unwrap()[0]["id"].as_str(), lines.as_array().unwrap().len()),
        (Some(adjustment.as_str()), 2)
    );
    let approved_amount = approval.body["adjustments"][0]["lines"][1]["amount"].to_string();
    assert!(
        post.raw_body.as_deref().unwrap().contains(&format!(r#""amount":{approved_amount}"#)),
        "{:?}",
        post.raw_body
    );

    // The same approval again is a replay: nothing new reaches Codat, the transfer least of all.
    let (status, answer) = stack.approve(&company, &approval.body).await;
    assert_eq!(status, 202, "{answer}");
    let again = stack.codat_calls(&company).await;
    assert_eq!(created_items(&again), items);
    assert_eq!(transfer_writes(&stack, &company, transfer).await, (1, 0, 0));
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn concurrent_duplicate_approvals_put_a_transfer_and_post_an_adjustment_once() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return;
    }
    let approval = transfer_and_adjustment(&stack);
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (stack, company, body) = (stack.clone(), approval.company.clone(), approval.body.clone());
        posts.spawn(async move { stack.approve(&company, &body).await });
    }
    while let Some(answer) = posts.join_next().await {
        let (status, answer) = answer.unwrap();
        assert!(status == 202 || status == 502, "{status}: {answer}");
    }
    let views = stack.settle(&approval.company, &approval.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == RECORDED), "{views:#?}");
    let items = created_items(&stack.codat_calls(&approval.company).await);
    for id in approval.ids() {
        assert_eq!(count(&items, &id), 1, "{id} must reach Codat exactly once");
    }
    let transfer = &approval.ids_of("transfers")[0];
    assert_eq!(transfer_writes(&stack, &approval.company, transfer).await, (1, 0, 0));
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn a_replay_with_other_content_is_a_conflict_naming_the_field_and_changes_nothing() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return;
    }
    let approval = transfer_and_adjustment(&stack);
    let company = approval.company.clone();
    let (status, answer) = stack.approve(&company, &approval.body).await;
    assert_eq!(status, 202, "{answer}");
    let views = stack.settle(&company, &approval.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == RECORDED), "{views:#?}");
    let before = stack.codat_calls(&company).await.len();

    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 4] = [
        ("transfers[0].to.amount", |b| b["transfers"][0]["to"]["amount"] = json!(499.99)),
        ("transfers[0].to.accountRef.id", |b| b["transfers"][0]["to"]["accountRef"]["id"] = json!("card-other")),
        ("transfers[0].description", |b| {
            b["transfers"][0].as_object_mut().unwrap().remove("description");
        }),
        ("adjustments[0].lines[1].description", |b| b["adjustments"][0]["lines"][1]["description"] = json!("changed")),
    ];
    for (field, edit) in edits {
        let mut body = approval.body.clone();
        edit(&mut body);
        let (status, answer) = stack.approve(&company, &body).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    // Nothing reached Codat: a changed transfer was never PUT (which would have updated it).
    assert_eq!(stack.codat_calls(&company).await.len(), before);
    let transfer = &approval.ids_of("transfers")[0];
    assert_eq!(transfer_writes(&stack, &company, transfer).await, (1, 0, 0));
    let views = stack.settle(&company, &approval.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == RECORDED), "{views:#?}");
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn lost_answers_are_resolved_from_codats_syncs_and_never_sent_again() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return;
    }
    let approval = transfer_and_adjustment(&stack);
    let company = approval.company.clone();
    // Codat takes each, then the answer is lost.
    for (method, path) in [("PUT", "/transfer-transactions/"), ("POST", "/adjustment-transactions")] {
        let path_contains = format!("{company}/sync/expenses{path}");
        stack
            .inject_fault(json!({"pathContains": path_contains, "method": method, "status": 500, "afterEffect": true}))
            .await;
    }
    let (status, answer) = stack.approve(&company, &approval.body).await;
    assert!(status == 202 || status == 502, "{status}: {answer}");
    let views = stack.settle(&company, &approval.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == RECORDED), "{views:#?}");

    let calls = stack.codat_calls(&company).await;
    for endpoint in ["/transfer-transactions/", "/adjustment-transactions"] {
        let lost =
            calls.iter().filter(|c| c.path.contains(endpoint) && c.status == 500 && c.handled_status == Some(200));
        assert_eq!(lost.count(), 1, "Codat took the {endpoint} create and its answer was lost");
    }
    assert!(calls.iter().any(|c| c.path.contains("/syncs/")), "the lookup asked Codat's sync lists");
    let items = created_items(&calls);
    for id in approval.ids() {
        assert_eq!(count(&items, &id), 1, "{id} must reach Codat exactly once");
    }
    let transfer = &approval.ids_of("transfers")[0];
    assert_eq!(transfer_writes(&stack, &company, transfer).await, (1, 0, 0), "never PUT again");
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn a_refused_create_fails_only_its_own_kind_with_codats_reason() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return;
    }
    let approval = transfer_and_adjustment(&stack);
    let company = approval.company.clone();
    let path_contains = format!("{company}/sync/expenses/adjustment-transactions");
    stack.inject_fault(json!({"pathContains": path_contains, "method": "POST", "status": 400})).await;
    let (status, answer) = stack.approve(&company, &approval.body).await;
    assert_eq!(status, 422, "{answer}");
    let views = stack.settle(&company, &approval.ids(), SETTLE).await;
    let (transfer, adjustment) = (&approval.ids_of("transfers")[0], &approval.ids_of("adjustments")[0]);
    assert_eq!(status_of(&views, transfer), RECORDED);
    assert_eq!(status_of(&views, adjustment), "failed");
    let failed = views.iter().find(|v| v["expenseId"] == adjustment.as_str()).unwrap();
    assert_eq!(
        (failed["failure"]["stage"].as_str(), failed["failure"]["codatStatus"].as_str()),
        (Some("submission"), Some("400"))
    );
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn bad_transfers_and_adjustments_are_refused_naming_the_field_and_nothing_is_stored() {
    let stack = Stack::from_env();
    let approval = stack.sample_of_every_kind();
    let company = approval.company.clone();
    if stack.api() == Api::V1 {
        // v1 has no such kinds: they are expense types there, and the kind is refused by name.
        let mut body = approval.body.clone();
        body["transfers"] = json!([{"id": uuid::Uuid::new_v4().to_string()}]);
        let (status, answer) = stack.approve(&company, &body).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some("transfers")), "{answer}");
        return;
    }
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 6] = [
        ("transfers[0].receipt", |b| b["transfers"][0]["receipt"] = b["expenses"][0]["receipt"].clone()),
        ("transfers[0].to.accountRef.id", |b| b["transfers"][0]["to"]["accountRef"]["id"] = json!("bank-main")),
        ("transfers[0].from.amount", |b| b["transfers"][0]["from"]["amount"] = json!(-500)),
        ("adjustments[0].lines", |b| b["adjustments"][0]["lines"][0]["amount"] = json!(1.38)),
        ("adjustments[0].lines[0].amount", |b| b["adjustments"][0]["lines"][0]["amount"] = json!(1.375)),
        ("expenses[0].type", |b| b["expenses"][0]["type"] = json!("TransferOut")),
    ];
    for (field, edit) in edits {
        let mut body = approval.body.clone();
        edit(&mut body);
        let (status, answer) = stack.approve(&company, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        if field == "expenses[0].type" {
            assert!(answer["message"].as_str().unwrap().contains("send it in transfers"), "{answer}");
        }
    }
    // None of the batches' valid items was stored either, and Codat heard nothing.
    for id in approval.ids() {
        assert_eq!(stack.expense(&company, &id).await.0, 404);
    }
    assert!(stack.codat_calls(&company).await.is_empty());
}

/// The card samples as `types`, in order, plus the reimbursable sample.
fn typed_expenses(stack: &Stack, types: &[&str]) -> Approval {
    let mut approval = stack.sample_approval();
    for (expense, kind) in approval.body["expenses"].as_array_mut().unwrap().iter_mut().zip(types) {
        expense["type"] = json!(kind);
    }
    approval
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn expenses_the_companys_software_takes_no_file_for_end_without_one_and_no_upload_is_tried() {
    let stack = Stack::from_env();
    if stack.api() == Api::V1 {
        return; // v1's upload endpoint has no integration table.
    }
    // QuickBooks Online takes files for Payment, Refund and reimbursable expenses only.
    let online = typed_expenses(&stack, &["Payment", "Reward", "Chargeback"]);
    stack.link_accounting(&online.company, "QuickBooks Online").await;
    // QuickBooks Desktop takes none.
    let desktop = typed_expenses(&stack, &["Payment", "Refund", "Reward"]);
    stack.link_accounting(&desktop.company, "QuickBooks Desktop").await;
    for approval in [&online, &desktop] {
        let (status, answer) = stack.approve(&approval.company, &approval.body).await;
        assert_eq!(status, 202, "{answer}");
    }

    let views = stack.settle(&online.company, &online.ids(), SETTLE).await;
    let [payment, reward, chargeback, reimbursable] = &online.ids()[..] else { panic!("four expenses") };
    assert_eq!(status_of(&views, payment), "uploaded");
    assert_eq!(status_of(&views, reimbursable), "uploaded");
    for id in [reward, chargeback] {
        let view = views.iter().find(|v| v["expenseId"] == id.as_str()).unwrap();
        assert_eq!(view["status"], RECORDED, "{view}");
        let note = view["note"].as_str().unwrap_or_default();
        assert!(note.contains("QuickBooks Online") && note.contains(view["type"].as_str().unwrap()), "{view}");
        assert!(view["attachmentId"].is_null() && view["failure"].is_null(), "{view}");
    }
    let calls = stack.codat_calls(&online.company).await;
    let tried: Vec<&str> = calls.iter().filter(|c| c.path.ends_with("/attachments")).map(|c| c.path.as_str()).collect();
    assert_eq!(tried.len(), 2, "uploads only for the two types QuickBooks Online takes files for: {tried:#?}");
    assert!(tried.iter().all(|path| path.contains(payment.as_str()) || path.contains(reimbursable.as_str())));
    let reads = calls.iter().filter(|c| c.path.ends_with("/connections")).count();
    assert!((1..online.ids().len()).contains(&reads), "connections read {reads} times for 4 expenses");

    let views = stack.settle(&desktop.company, &desktop.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == RECORDED), "{views:#?}");
    let calls = stack.codat_calls(&desktop.company).await;
    assert!(!calls.iter().any(|c| c.path.ends_with("/attachments")), "QuickBooks Desktop: no upload tried");
    assert_eq!(created_items(&calls).len(), desktop.ids().len(), "each still created once");
}
