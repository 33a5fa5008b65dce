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

#[tokio::test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
async fn an_expense_id_reused_for_other_content_is_a_conflict() {
    let stack = Stack::from_env();
    let approval = stack.sample_approval();
    let (status, _) = stack.approve(&approval.company, &approval.body).await;
    assert_eq!(status, 202);
    let mut changed = approval.body.clone();
    changed["expenses"][0]["lines"][0]["netAmount"] = json!(99.99);
    let (status, answer) = stack.approve(&approval.company, &changed).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["field"], "expenses[0].id");
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
