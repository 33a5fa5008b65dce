//! Properties, not examples: the intake parser, the money codec and the webhook verifier.
//!
//! * Any valid approval reaches Codat's request body exactly: every amount with the very digits
//!   approved, every field as sent.
//! * Any single corrupted field among valid siblings is refused naming that field.
//! * No input makes the parser or the verifier panic.

use base64::Engine;
use expense_sync::codat;
use expense_sync::domain::{ApprovalBatch, CompanyId, IntakeRules};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";

const COMPANY: &str = "8a210b68-6988-11ed-a1eb-0242ac120002";

fn company() -> CompanyId {
    COMPANY.parse().unwrap()
}

/// Currencies with each number of minor units ISO 4217 has.
const CURRENCIES: &[(&str, u32)] = &[("GBP", 2), ("JPY", 0), ("KWD", 3), ("USD", 2), ("CLF", 4), ("EUR", 2)];

/// A JSON number in plain form with at most 13 integer digits and `places` decimals, as text.
fn amount_text(places: u32) -> impl Strategy<Value = String> {
    let whole = prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,12}"];
    let fraction = if places == 0 {
        Just(String::new()).boxed()
    } else {
        proptest::string::string_regex(&format!("(\\.[0-9]{{1,{places}}})?")).unwrap().boxed()
    };
    (any::<bool>(), whole, fraction).prop_map(|(negative, whole, fraction)| {
        let text = format!("{whole}{fraction}");
        let zero = text.bytes().all(|b| b == b'0' || b == b'.');
        if negative && !zero {
            format!("-{text}")
        } else {
            text
        }
    })
}

#[derive(Debug, Clone)]
struct LineSpec {
    net: String,
    tax: Option<String>,
    account: String,
}

#[derive(Debug, Clone)]
struct ExpenseSpec {
    id: uuid::Uuid,
    kind: &'static str,
    date: (i32, u32, u32),
    currency: &'static str,
    rate: Option<String>,
    merchant: Option<String>,
    lines: Vec<LineSpec>,
    receipt: Vec<u8>,
}

fn expense_spec() -> impl Strategy<Value = ExpenseSpec> {
    (0..CURRENCIES.len()).prop_flat_map(|c| {
        let (currency, places) = CURRENCIES[c];
        let line = (amount_text(places), proptest::option::of(amount_text(places)), "[A-Za-z0-9_-]{1,20}")
            .prop_map(|(net, tax, account)| LineSpec { net, tax, account });
        let rate = proptest::option::of("[1-9][0-9]{0,4}\\.[0-9]{1,9}");
        (
            any::<u128>(),
            prop::sample::select(vec!["Payment", "Refund", "Reward", "Chargeback"]),
            (1i32..=9999, 1u32..=12, 1u32..=28),
            rate,
            proptest::option::of("[^\\p{C}\\p{Zl}\\p{Zp}]{0,40}"),
            prop::collection::vec(line, 1..4),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(move |(id, kind, date, rate, merchant, lines, tail)| ExpenseSpec {
                id: uuid::Builder::from_random_bytes(id.to_le_bytes()).into_uuid(),
                kind,
                date,
                currency,
                rate,
                merchant,
                lines,
                // A PNG's signature and IHDR chunk, any bytes, then its IEND chunk.
                receipt: [PNG_HEAD, &tail, b"\0\0\0\0IEND\xaeB`\x82"].concat(),
            })
    })
}

/// The approval body for `specs`, with every amount written as its exact text.
fn body(specs: &[ExpenseSpec]) -> String {
    let mut amounts = Vec::new();
    let mut placeholder = |text: &str| {
        amounts.push(text.to_string());
        Value::String(format!("@amount{}@", amounts.len() - 1))
    };
    let expenses: Vec<Value> = specs
        .iter()
        .map(|spec| {
            let lines: Vec<Value> = spec
                .lines
                .iter()
                .map(|line| {
                    let mut value = json!({"netAmount": placeholder(&line.net), "accountRef": {"id": line.account}});
                    if let Some(tax) = &line.tax {
                        value["taxAmount"] = placeholder(tax);
                    }
                    value
                })
                .collect();
            let (y, m, d) = spec.date;
            let mut value = json!({
                "id": spec.id.to_string(),
                "type": spec.kind,
                "issueDate": format!("{y:04}-{m:02}-{d:02}"),
                "currency": spec.currency,
                "lines": lines,
                "receipt": {"fileName": "receipt.png", "contentType": "image/png",
                            "data": base64::engine::general_purpose::STANDARD.encode(&spec.receipt)},
            });
            if let Some(rate) = &spec.rate {
                value["currencyRate"] = placeholder(rate);
            }
            if let Some(merchant) = &spec.merchant {
                value["merchantName"] = json!(merchant);
            }
            value
        })
        .collect();
    let mut text = json!({ "expenses": expenses }).to_string();
    for (i, amount) in amounts.iter().enumerate() {
        text = text.replace(&format!("\"@amount{i}@\""), amount);
    }
    text
}

/// Just the amounts of a Codat request body, as the JSON text Codat receives.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentAmounts {
    currency_rate: Option<Box<RawValue>>,
    lines: Vec<SentLine>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentLine {
    net_amount: Box<RawValue>,
    tax_amount: Option<Box<RawValue>>,
}

fn unique_ids(specs: &[ExpenseSpec]) -> bool {
    let ids: std::collections::HashSet<_> = specs.iter().map(|s| s.id).collect();
    ids.len() == specs.len()
}

fn rules() -> &'static IntakeRules {
    &codat::expenses::INTAKE
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_approval_reaches_codat_exactly(specs in prop::collection::vec(expense_spec(), 1..5)) {
        prop_assume!(unique_ids(&specs));
        let body = body(&specs);
        let batch = ApprovalBatch::parse(company(), body.as_bytes(), rules())
            .map_err(|e| TestCaseError::fail(format!("{e} in {body}")))?;
        prop_assert_eq!(batch.expenses.len(), specs.len());
        for (spec, approved) in specs.iter().zip(&batch.expenses) {
            let sent = serde_json::to_string(&codat::expenses::ExpenseTransaction::from(approved.entry.as_transaction().unwrap())).unwrap();
            let amounts: SentAmounts = serde_json::from_str(&sent).unwrap();
            prop_assert_eq!(amounts.currency_rate.as_ref().map(|r| r.get()), spec.rate.as_deref());
            for (line, sent_line) in spec.lines.iter().zip(&amounts.lines) {
                prop_assert_eq!(sent_line.net_amount.get(), line.net.as_str());
                prop_assert_eq!(sent_line.tax_amount.as_ref().map(|t| t.get()), line.tax.as_deref());
            }
            let sent: Value = serde_json::from_str(&sent).unwrap();
            prop_assert_eq!(&sent["id"], &json!(spec.id.to_string()));
            prop_assert_eq!(&sent["type"], &json!(spec.kind));
            prop_assert_eq!(&sent["currency"], &json!(spec.currency));
            let (y, m, d) = spec.date;
            prop_assert_eq!(&sent["issueDate"], &json!(format!("{y:04}-{m:02}-{d:02}T00:00:00Z")));
            prop_assert_eq!(sent.get("merchantName").and_then(Value::as_str), spec.merchant.as_deref());
            for (line, sent_line) in spec.lines.iter().zip(sent["lines"].as_array().unwrap()) {
                prop_assert_eq!(&sent_line["accountRef"]["id"], &json!(line.account));
            }
            prop_assert_eq!(&approved.receipt.as_ref().unwrap().bytes, &spec.receipt);
            // The stored form reads back with the same digits.
            let stored = serde_json::to_string(&approved.entry).unwrap();
            let back: expense_sync::domain::Transaction = serde_json::from_str(&stored).unwrap();
            prop_assert_eq!(back.lines[0].net_amount.to_string(), spec.lines[0].net.clone());
        }
    }

    #[test]
    fn one_corrupted_field_among_valid_siblings_is_named(
        specs in prop::collection::vec(expense_spec(), 2..5),
        target in any::<prop::sample::Index>(),
        corruption in 0..CORRUPTIONS.len(),
    ) {
        prop_assume!(unique_ids(&specs));
        let index = target.index(specs.len());
        let mut value: Value = serde_json::from_str(&body(&specs)).unwrap();
        let (suffix, corrupt) = CORRUPTIONS[corruption];
        corrupt(&mut value["expenses"][index]);
        let text = value.to_string();
        match ApprovalBatch::parse(company(), text.as_bytes(), rules()) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted with {suffix} corrupted"))),
            Err(err) => prop_assert_eq!(err.field, format!("expenses[{index}].{suffix}"), "{}", err.message),
        }
    }

    #[test]
    fn no_bytes_make_the_parser_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ApprovalBatch::parse(company(), &bytes, rules());
        let _ = ApprovalBatch::parse(company(), &bytes, &codat::v1::INTAKE);
    }

    #[test]
    fn no_edit_of_a_valid_body_makes_the_parser_panic(
        specs in prop::collection::vec(expense_spec(), 1..3),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut bytes = body(&specs).into_bytes();
        for (at, byte, how) in edits {
            let at = at.index(bytes.len());
            match how {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
        }
        let _ = ApprovalBatch::parse(company(), &bytes, rules());
    }

    #[test]
    fn no_json_value_makes_the_parser_panic(value in json_value()) {
        let _ = ApprovalBatch::parse(company(), value.to_string().as_bytes(), rules());
        let wrapped = json!({"expenses": [value.clone()], "reimbursableExpenses": [value]});
        let _ = ApprovalBatch::parse(company(), wrapped.to_string().as_bytes(), rules());
    }

    #[test]
    fn decimal_text_round_trips_exactly(text in amount_text(4), extra in "[0-9]{0,10}") {
        let text = if text.contains('.') { format!("{text}{extra}") } else { text };
        let decimal = expense_sync::json::decimal_from_json(&text).unwrap();
        prop_assert_eq!(decimal.to_string(), text);
    }
}

type Corruption = fn(&mut Value);

/// One wrong field each, and the path (after `expenses[i].`) the refusal must name.
const CORRUPTIONS: &[(&str, Corruption)] = &[
    ("lines[0].accountRef", |e| e["lines"][0]["accountRef"] = json!(["42"])),
    ("lines[0].accountRef.id", |e| e["lines"][0]["accountRef"]["id"] = json!("x".repeat(420_000))),
    ("lines[0].netAmount", |e| e["lines"][0]["netAmount"] = json!("12")),
    ("lines[0].netAmount", |e| e["lines"][0]["netAmount"] = json!(1.23456)),
    ("lines[0].netAmount", |e| e["lines"][0]["netAmount"] = json!(1.8e19)),
    ("lines[0]", |e| e["lines"][0] = json!([1, {"id": "42"}])),
    ("lines", |e| e["lines"] = json!([])),
    ("currency", |e| e["currency"] = json!("ABC")),
    ("id", |e| e["id"] = json!(e["id"].as_str().unwrap().to_uppercase())),
    ("issueDate", |e| e["issueDate"] = json!("10000-01-01")),
    ("currencyRate", |e| e["currencyRate"] = json!(0)),
    ("merchantName", |e| e["merchantName"] = json!("m".repeat(1001))),
    ("receipt", |e| e["receipt"] = json!(["receipt.png", "image/png", "iVBORw0KGgo="])),
    ("receipt.fileName", |e| e["receipt"]["fileName"] = json!("receipt\u{202E}gnp.exe")),
    ("receipt.data", |e| e["receipt"]["data"] = json!(base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.7"))),
    ("surprise", |e| e["surprise"] = json!(true)),
    ("type", |e| e["type"] = json!("TransferIn")),
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "expenses",
                    "id",
                    "type",
                    "lines",
                    "netAmount",
                    "currency",
                    "receipt",
                    "issueDate",
                    "data",
                    "fileName",
                    "contentType",
                    "accountRef",
                    "x",
                ])
                .prop_map(String::from),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(feature = "webhooks")]
mod webhooks {
    use super::*;
    use expense_sync::webhook::{WebhookError, WebhookVerifier};
    use http::{HeaderMap, HeaderValue};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(body: &[u8], id: &str) -> HeaderMap {
        let now = chrono::Utc::now().timestamp();
        let signature = svix::webhooks::Webhook::new(SECRET).unwrap().sign(id, now, body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        headers.insert("webhook-timestamp", HeaderValue::from_str(&now.to_string()).unwrap());
        headers.insert("webhook-signature", HeaderValue::from_str(&signature).unwrap());
        headers
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn signed_bodies_are_parsed_or_named_never_a_panic(value in json_value(), id in "msg_[a-zA-Z0-9]{1,20}") {
            let verifier = WebhookVerifier::new(Some(SECRET), None).unwrap();
            let body = value.to_string().into_bytes();
            match verifier.verify(&signed(&body, &id), &body) {
                Ok(delivery) => prop_assert_eq!(delivery.id, id),
                Err(WebhookError::Malformed { field, .. }) => prop_assert!(!field.is_empty()),
                Err(other) => return Err(TestCaseError::fail(format!("signed delivery refused: {other}"))),
            }
        }

        #[test]
        fn any_change_to_a_signed_body_is_unauthenticated(
            value in json_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let verifier = WebhookVerifier::new(Some(SECRET), None).unwrap();
            let body = value.to_string().into_bytes();
            let headers = signed(&body, "msg_1");
            let mut tampered = body.clone();
            let at = at.index(tampered.len());
            prop_assume!(tampered[at] != byte);
            tampered[at] = byte;
            prop_assert!(matches!(verifier.verify(&headers, &tampered), Err(WebhookError::Unauthenticated(_))));
        }

        #[test]
        fn no_headers_or_bytes_make_the_verifier_panic(
            body in prop::collection::vec(any::<u8>(), 0..256),
            headers in prop::collection::vec((prop::sample::select(vec![
                "webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp",
                "svix-signature", "authorization",
            ]), "[ -~]{0,60}"), 0..6),
        ) {
            let verifier = WebhookVerifier::new(Some(SECRET), Some("Bearer legacy")).unwrap();
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    map.insert(name, value);
                }
            }
            let _ = verifier.verify(&map, &body);
        }
    }
}
