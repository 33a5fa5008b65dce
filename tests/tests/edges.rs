//! What the HTTP edges refuse, through the functions as deployed locally.

mod common;

use common::{Stack, SETTLE};
use serde_json::json;

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_written() {
    let stack = Stack::from_env();
    let mut approval = stack.sample_approval();
    approval.body["expenses"][2]["lines"][0]["accountRef"] = json!({"id": ""});
    let (status, answer) = stack.approve(&approval.company, &approval.body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "expenses[2].lines[0].accountRef.id", "{answer}");
    // The valid expenses of the batch were not recorded either, and Codat heard nothing.
    for id in approval.ids() {
        let (status, _) = stack.expense(&approval.company, &id).await;
        assert_eq!(status, 404);
    }
    assert!(stack.codat_calls(&approval.company).await.is_empty());

    let (status, answer) = stack.approve("not-a-uuid", &approval.body).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("companyId")));
}

/// Issue 14's half-written 500: one expense over DynamoDB's item limit among valid siblings.
#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn an_approval_with_one_oversized_expense_stores_and_sends_nothing() {
    let stack = Stack::from_env();
    let huge_id = json!({"id": "7".repeat(420_000)});
    // Every field within its own limit, together past what one stored item may weigh.
    let heavy_lines: Vec<_> = (0..100)
        .map(|_| {
            json!({"netAmount": 1, "taxAmount": 0, "accountRef": {"id": "é".repeat(255)},
                   "trackingRefs": (0..10).map(|_| json!({"id": "é".repeat(255)})).collect::<Vec<_>>()})
        })
        .collect();
    for (field, oversize) in [
        ("expenses[1].lines[0].accountRef.id", json!([{"netAmount": 1, "taxAmount": 0, "accountRef": huge_id}])),
        ("expenses[1]", json!(heavy_lines)),
    ] {
        let mut approval = stack.sample_approval();
        approval.body["expenses"][1]["lines"] = oversize;
        let (status, answer) = stack.approve(&approval.company, &approval.body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        for id in approval.ids() {
            assert_eq!(stack.expense(&approval.company, &id).await.0, 404, "{id} was stored");
        }
        assert!(stack.codat_calls(&approval.company).await.is_empty(), "Codat was called");
    }
}

/// Amounts no float holds reach Codat with exactly the digits approved.
#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn amounts_reach_codat_byte_for_byte() {
    let stack = Stack::from_env();
    let mut approval = stack.sample_approval().cards_only();
    let exact = [("CLF", "1234567890123.4567", "0.0001"), ("KWD", "9999999999999.999", "0.125")];
    for (i, (currency, _, _)) in exact.iter().enumerate() {
        let expense = &mut approval.body["expenses"][i];
        expense["currency"] = json!(currency);
        expense["lines"] = json!([{"netAmount": format!("@net{i}@"), "taxAmount": format!("@tax{i}@"),
                                   "accountRef": {"id": "42"}}]);
    }
    let mut text = approval.body.to_string();
    for (i, (_, net, tax)) in exact.iter().enumerate() {
        text = text.replace(&format!("\"@net{i}@\""), net).replace(&format!("\"@tax{i}@\""), tax);
    }
    let (status, answer) = stack.approve_text(&approval.company, text).await;
    assert_eq!(status, 202, "{answer}");
    let views = stack.settle(&approval.company, &approval.ids(), SETTLE).await;
    assert!(views.iter().all(|v| v["status"] == "uploaded"), "{views:#?}");
    let sent: String = stack
        .codat_calls(&approval.company)
        .await
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("expense-transactions"))
        .filter_map(|c| c.raw_body)
        .collect();
    for (_, net, tax) in exact {
        assert!(sent.contains(&format!("\"netAmount\":{net}")), "{net} not sent exactly: {sent}");
        assert!(sent.contains(&format!("\"taxAmount\":{tax}")), "{tax} not sent exactly: {sent}");
    }
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn an_expense_id_reused_for_other_content_is_a_conflict() {
    let stack = Stack::from_env();
    let approval = stack.sample_approval();
    let (status, _) = stack.approve(&approval.company, &approval.body).await;
    assert_eq!(status, 202);
    // The 409 names the first field that differs, in the request's own terms.
    type Edit = fn(&mut serde_json::Value);
    let mut edits: Vec<(&str, Edit)> = vec![
        ("expenses[0].lines[0].netAmount", |b| b["expenses"][0]["lines"][0]["netAmount"] = json!(99.99)),
        ("expenses[1].receipt.fileName", |b| b["expenses"][1]["receipt"]["fileName"] = json!("other.pdf")),
        ("expenses[2].receipt.data", |b| {
            let png = b["expenses"][0]["receipt"].clone();
            b["expenses"][2]["receipt"]["data"] = png["data"].clone();
        }),
    ];
    if approval.body.get("reimbursableExpenses").is_some() {
        edits.push(("reimbursableExpenses[0].dueDate", |b| {
            b["reimbursableExpenses"][0]["dueDate"] = json!("2024-07-01")
        }));
    }
    for (field, edit) in edits {
        let mut changed = approval.body.clone();
        edit(&mut changed);
        let (status, answer) = stack.approve(&approval.company, &changed).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    stack.settle(&approval.company, &approval.ids(), SETTLE).await;
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn webhooks_without_a_valid_signature_are_refused() {
    let stack = Stack::from_env();
    let url = format!("{}/webhook-receipt/webhooks/codat", stack.api);
    let body = json!({"eventType": "expenses.sync.successful",
                      "payload": {"referenceCompany": {"id": uuid::Uuid::new_v4()}, "syncId": uuid::Uuid::new_v4()}});
    let unsigned = stack.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = stack
        .http
        .post(&url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", chrono_now().to_string())
        .header("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn intake_accepts_exactly_what_the_selected_api_accepts() {
    let stack = Stack::from_env();
    let refused = |field: &'static str, edit: Box<dyn Fn(&mut serde_json::Value)>| (field, edit);
    let cases = match stack.api() {
        common::Api::Expenses => vec![
            refused("expenses[0].type", Box::new(|b| b["expenses"][0]["type"] = json!("TransferIn"))),
            refused(
                "expenses[1].contactRef.contactType",
                Box::new(|b| b["expenses"][1]["contactRef"] = json!({"id": "430", "contactType": "Supplier"})),
            ),
            refused(
                "expenses[0].receipt.contentType",
                Box::new(|b| b["expenses"][0]["receipt"]["contentType"] = json!("image/webp")),
            ),
            refused(
                "reimbursableExpenses[0].dueDate",
                Box::new(|b| b["reimbursableExpenses"][0]["dueDate"] = json!("soon")),
            ),
            refused(
                "reimbursableExpenses[0].merchantName",
                Box::new(|b| b["reimbursableExpenses"][0]["merchantName"] = json!("Trainline")),
            ),
        ],
        common::Api::V1 => vec![
            refused(
                "expenses[0].bankAccountRef",
                Box::new(|b| b["expenses"][0]["bankAccountRef"] = json!({"id": "97"})),
            ),
            refused("expenses[0].reference", Box::new(|b| b["expenses"][0]["reference"] = json!("card 4590"))),
            refused(
                "expenses[1].contactRef.type",
                Box::new(|b| b["expenses"][1]["contactRef"] = json!({"id": "430", "type": "Supplier"})),
            ),
            refused(
                "expenses[0].lines[0].trackingRefs[0].dataType",
                Box::new(|b| b["expenses"][0]["lines"][0]["trackingRefs"][0]["dataType"] = json!("trackingCategories")),
            ),
            refused("reimbursableExpenses", Box::new(|b| b["reimbursableExpenses"] = json!([]))),
        ],
    };
    for (field, edit) in cases {
        let mut approval = stack.sample_approval();
        edit(&mut approval.body);
        let (status, answer) = stack.approve(&approval.company, &approval.body).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{answer}");
        // Nothing of the batch was stored, and Codat heard nothing.
        for id in approval.ids() {
            assert_eq!(stack.expense(&approval.company, &id).await.0, 404);
        }
        assert!(stack.codat_calls(&approval.company).await.is_empty());
    }
}
