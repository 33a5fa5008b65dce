//! A company's data connections (`GET /companies/{companyId}/connections` and
//! `/connections/{connectionId}`, schemas `Connection` and `Connections`), the admin route
//! that replaces them (`PUT /_sandbox/companies/{companyId}/connections`), and Codat's
//! "Integration-specific behavior" table for attachment uploads, which depends on them.
//!
//! Every company (any uuid: companies exist implicitly here, as for the other routes) has one
//! connection until the admin route replaces its list: Xero (`gbol`), `Accounting`, `Linked`,
//! with ids derived from the company id, so they are the same on every call and after a reset.
//!
//! Listing: `page` (default 1, at least 1) and `pageSize` (default 100, 1 to 5000, the
//! parameter's maximum; `PagingInfo` says 2000) page the results; `orderBy` is one top-level
//! field, `-` first for descending (default: the stored order); `query` supports clauses
//! `field=value`, `field!=value` and `field~value` (contains) on top-level string fields,
//! joined by `&&`, compared ignoring ASCII case, a value optionally in braces (`{Xero}`).
//! Anything else (`||`, parentheses, `<`, `>`) answers the YAML's `Malformed-Query` 400, and an
//! unknown field its "Could not resolve property" 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::errors::{company_not_found, error_from, invalid, item_error, normalize_id, parse_uuid};
use crate::state::{Company, Shared, SyncKind, Txn, TxnKind};

type AppState = State<Arc<Shared>>;

pub fn routes(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/companies/{companyId}/connections", get(list))
        .route("/companies/{companyId}/connections/{connectionId}", get(one))
        .route("/_sandbox/companies/{companyId}/connections", put(replace))
        .with_state(state)
}

/// `Connection`: every required field, plus `integrationKey` and `lastSync`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub integration_id: String,
    pub integration_key: String,
    pub source_id: String,
    pub platform_name: String,
    pub link_url: String,
    pub status: String,
    pub last_sync: Option<String>,
    pub created: String,
    pub source_type: String,
}

const STATUSES: &[&str] = &["PendingAuth", "Linked", "Unlinked", "Deauthorized"];
const SOURCE_TYPES: &[&str] = &["Accounting", "Banking", "BankFeed", "Commerce", "Expense", "Other", "Unknown"];
/// The top-level string fields `query` and `orderBy` may name.
const FIELDS: &[&str] = &[
    "id",
    "integrationId",
    "integrationKey",
    "sourceId",
    "platformName",
    "linkUrl",
    "status",
    "lastSync",
    "created",
    "sourceType",
];
const DEFAULT_CREATED: &str = "2024-01-02T09:30:00Z";

/// Which transactions an integration takes a file for.
enum Takes {
    Nothing,
    All,
    Only(&'static [&'static str]),
}

/// One row of the upload endpoint's "Integration-specific behavior" table.
struct Integration {
    key: &'static str,
    /// The first is the `platformName` the admin route fills in for the key.
    names: &'static [&'static str],
    /// "MB" read as MiB: intake's 3 × 1024 × 1024 for Xero's 3 MB is then exactly the limit.
    max_mib: usize,
    /// `None`: no explicit requirements (Dynamics 365 Business Central).
    file_types: Option<&'static [&'static str]>,
    takes: Takes,
}

const PAYMENT: &str = "expense-transactions.Payment";
const REFUND: &str = "expense-transactions.Refund";
const REIMBURSABLE: &str = "reimbursable-expense-transactions";

/// The table as the current YAML states it (the v1 YAML's upload endpoint has none). Keys:
/// `akxx` is the YAML's own (its examples' "Oracle NetSuite"), `gbol` its example platform key;
/// the others are Codat's published platform keys, which the YAML does not list.
const INTEGRATIONS: &[Integration] = &[
    Integration {
        key: "gbol",
        names: &["Xero"],
        max_mib: 3,
        file_types: Some(&[
            "7z", "bmp", "csv", "doc", "docx", "eml", "gif", "jpeg", "jpg", "keynote", "msg", "numbers", "odf", "ods",
            "odt", "pages", "pdf", "png", "ppt", "pptx", "rar", "rtf", "tif", "tiff", "txt", "xls", "xlsx", "zip",
        ]),
        takes: Takes::All,
    },
    Integration {
        key: "qhyg",
        names: &["QuickBooks Online"],
        max_mib: 100,
        file_types: Some(&[
            "ai", "csv", "doc", "docx", "eps", "gif", "jpeg", "jpg", "ods", "pages", "pdf", "png", "rtf", "tif", "txt",
            "xls", "xlsx", "xml",
        ]),
        takes: Takes::Only(&[PAYMENT, REFUND, REIMBURSABLE]),
    },
    Integration {
        key: "akxx",
        names: &["Oracle NetSuite", "NetSuite"],
        max_mib: 100,
        file_types: Some(&[
            "bmp", "csv", "xls", "xlsx", "json", "pdf", "pjpg", "pjpeg", "png", "txt", "svg", "tif", "tiff", "doc",
            "docx", "zip",
        ]),
        takes: Takes::Only(&[PAYMENT, REFUND]),
    },
    Integration {
        key: "trji",
        names: &["Dynamics 365 Business Central", "Microsoft Dynamics 365 Business Central"],
        max_mib: 350,
        file_types: None,
        takes: Takes::All,
    },
    Integration { key: "pqsw", names: &["QuickBooks Desktop"], max_mib: 0, file_types: None, takes: Takes::Nothing },
    Integration {
        key: "fbrh",
        names: &["FreeAgent"],
        max_mib: 5,
        // The table's "PNG, X-PNG, JPEG, PJG, GIF, X-PDF" read with `x-` dropped (see `file_type_ok`).
        file_types: Some(&["png", "jpeg", "pjg", "gif", "pdf"]),
        takes: Takes::Only(&[PAYMENT, REIMBURSABLE]),
    },
    Integration {
        key: "rwuv",
        names: &["Zoho Books"],
        max_mib: 5,
        file_types: Some(&["gif", "png", "jpeg", "jpg", "bmp", "pdf"]),
        takes: Takes::Only(&[PAYMENT, REIMBURSABLE]),
    },
];

fn integration_by_key(key: &str) -> Option<&'static Integration> {
    INTEGRATIONS.iter().find(|i| i.key == key)
}

fn integration_by_name(name: &str) -> Option<&'static Integration> {
    INTEGRATIONS.iter().find(|i| i.names.iter().any(|n| n.eq_ignore_ascii_case(name.trim())))
}

fn digest(label: &str, value: &str) -> [u8; 32] {
    Sha256::digest(format!("{label}:{value}").as_bytes()).into()
}

/// A uuid that is always the same for the same label and value.
fn stable_uuid(label: &str, value: &str) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest(label, value)[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// A platform key for a platform the table does not know: four letters, stable per name.
fn made_up_key(name: &str) -> String {
    digest("platform", &name.to_ascii_lowercase())[..4].iter().map(|b| char::from(b'a' + b % 26)).collect()
}

fn connection(
    company: &str,
    id: String,
    key: &str,
    name: &str,
    status: &str,
    source_type: &str,
    created: String,
) -> Connection {
    Connection {
        link_url: format!("https://link-api.codat.io/companies/{company}/connections/{id}/start"),
        id,
        integration_id: stable_uuid("integration", key),
        integration_key: key.to_string(),
        source_id: stable_uuid("source", key),
        platform_name: name.to_string(),
        status: status.to_string(),
        last_sync: (status == "Linked").then(|| created.clone()),
        created,
        source_type: source_type.to_string(),
    }
}

/// The company's connections: the admin route's list, or the default Xero one.
pub fn connections_of(company: &str, state: Option<&Company>) -> Vec<Connection> {
    match state.and_then(|s| s.connections.clone()) {
        Some(list) => list,
        None => {
            let id = stable_uuid("connection", company);
            vec![connection(company, id, "gbol", "Xero", "Linked", "Accounting", DEFAULT_CREATED.into())]
        }
    }
}

fn malformed(message: &str) -> Response {
    error_from("ClientsApi", StatusCode::BAD_REQUEST, &format!("Error parsing query - {message}"), vec![])
}

fn unresolved(field: &str) -> String {
    format!("Could not resolve property {field} on Connection")
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
    query: Option<String>,
    #[serde(rename = "orderBy")]
    order_by: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    Contains,
}

/// `query` as clauses `(field, op, lower-cased value)`, or what the 400 says after
/// "Error parsing query - ".
fn parse_query(query: &str) -> Result<Vec<(String, Op, String)>, String> {
    if query.contains("||") || query.contains(['(', ')', '<', '>']) {
        return Err("Malformed query.".into());
    }
    let mut clauses = Vec::new();
    for clause in query.split("&&") {
        let (field, op, value) = if let Some((f, v)) = clause.split_once("!=") {
            (f, Op::NotEquals, v)
        } else if let Some((f, v)) = clause.split_once('~') {
            (f, Op::Contains, v)
        } else if let Some((f, v)) = clause.split_once('=') {
            (f, Op::Equals, v)
        } else {
            return Err("Malformed query.".into());
        };
        let field = field.trim();
        if field.is_empty() || field.contains(['=', '!', '~', ' ']) {
            return Err("Malformed query.".into());
        }
        if !FIELDS.contains(&field) {
            return Err(unresolved(field));
        }
        let value = value.trim();
        let value = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')).unwrap_or(value);
        clauses.push((field.to_string(), op, value.to_ascii_lowercase()));
    }
    Ok(clauses)
}

fn matches(connection: &Map<String, Value>, clauses: &[(String, Op, String)]) -> bool {
    clauses.iter().all(|(field, op, value)| {
        let actual = connection.get(field).and_then(Value::as_str).map(str::to_ascii_lowercase);
        match (op, actual) {
            (Op::Equals, Some(actual)) => actual == *value,
            (Op::Contains, Some(actual)) => actual.contains(value.as_str()),
            (Op::NotEquals, actual) => actual.as_deref() != Some(value.as_str()),
            (_, None) => false,
        }
    })
}

async fn list(
    State(shared): AppState,
    Path(company): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    let Ok(Query(query)) = query else { return malformed("Malformed query.") };
    let page: u32 = match query.page.as_deref().map(str::parse) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => return malformed("page must be an integer of at least 1"),
    };
    let page_size: u32 = match query.page_size.as_deref().map(str::parse) {
        None => 100,
        Some(Ok(s)) if (1..=5000).contains(&s) => s,
        _ => return malformed("pageSize must be an integer from 1 to 5000"),
    };
    let clauses = match query.query.as_deref().filter(|q| !q.trim().is_empty()).map(parse_query) {
        None => Vec::new(),
        Some(Ok(clauses)) => clauses,
        Some(Err(message)) => return malformed(&message),
    };
    let connections = connections_of(&company, shared.lock().companies.get(&company));
    let mut results: Vec<Map<String, Value>> = connections
        .iter()
        .filter_map(|c| match serde_json::to_value(c) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        })
        .filter(|c| matches(c, &clauses))
        .collect();
    if let Some(order) = query.order_by.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        let (field, descending) = match order.strip_prefix('-') {
            Some(field) => (field, true),
            None => (order, false),
        };
        if !FIELDS.contains(&field) {
            return malformed(&unresolved(field));
        }
        let key = |c: &Map<String, Value>| c.get(field).and_then(Value::as_str).map(str::to_string);
        results.sort_by_key(key);
        if descending {
            results.reverse();
        }
    }
    let total = results.len() as u64;
    let start = (u64::from(page) - 1).saturating_mul(u64::from(page_size));
    let results: Vec<_> =
        results.into_iter().skip(usize::try_from(start).unwrap_or(usize::MAX)).take(page_size as usize).collect();
    let href = |p: u64| format!("/companies/{company}/connections?page={p}&pageSize={page_size}");
    let mut links =
        json!({"self": {"href": format!("/companies/{company}/connections")}, "current": {"href": href(page.into())}});
    if u64::from(page) * u64::from(page_size) < total {
        links["next"] = json!({"href": href(u64::from(page) + 1)});
    }
    if page > 1 {
        links["previous"] = json!({"href": href(u64::from(page) - 1)});
    }
    Json(json!({"results": results, "pageNumber": page, "pageSize": page_size, "totalResults": total, "_links": links}))
        .into_response()
}

async fn one(State(shared): AppState, Path((company, connection_id)): Path<(String, String)>) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    let wanted = normalize_id(&connection_id);
    let connections = connections_of(&company, shared.lock().companies.get(&company));
    match connections.into_iter().find(|c| c.id == wanted) {
        Some(connection) => Json(connection).into_response(),
        None => error_from(
            "PublicApi",
            StatusCode::NOT_FOUND,
            &format!("Data connection {connection_id} not found"),
            vec![],
        ),
    }
}

/// One connection of the admin route's body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewConnection {
    #[serde(default)]
    id: Option<String>,
    platform_name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    source_type: Option<String>,
    #[serde(default)]
    integration_key: Option<String>,
}

/// `PUT /_sandbox/companies/{companyId}/connections`: body one `{platformName, status?,
/// sourceType?, integrationKey?, id?}` or `{"connections": [...]}` (possibly empty); replaces
/// the company's connections. Defaults: `Linked`, `Accounting`, the table's key for a platform
/// it names (else four letters derived from the name), a new uuid. A company can have one
/// active accounting connection, so two `Linked` `Accounting` ones are refused. Answers 200
/// `{"connections": [Connection...]}`.
async fn replace(State(shared): AppState, Path(company): Path<String>, body: Bytes) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    let bad = |message: String| invalid(vec![item_error(None, message)]);
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return bad(format!("The body must be JSON: {e}")),
    };
    let parsed = match body {
        Value::Object(mut object) if object.contains_key("connections") => {
            let list = object.remove("connections").unwrap_or_default();
            match object.keys().next() {
                Some(other) => Err(format!("Unexpected property {other} beside connections")),
                None => serde_json::from_value::<Vec<NewConnection>>(list).map_err(|e| format!("connections: {e}")),
            }
        }
        other => serde_json::from_value::<NewConnection>(other).map(|c| vec![c]).map_err(|e| e.to_string()),
    };
    let new = match parsed {
        Ok(new) => new,
        Err(message) => return bad(message),
    };
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut connections: Vec<Connection> = Vec::new();
    for (index, c) in new.into_iter().enumerate() {
        let name = c.platform_name.trim();
        if name.is_empty() {
            return bad(format!("[{index}].platformName must not be empty"));
        }
        let status = c.status.unwrap_or_else(|| "Linked".into());
        if !STATUSES.contains(&status.as_str()) {
            return bad(format!("[{index}].status must be one of {}", STATUSES.join(", ")));
        }
        let source_type = c.source_type.unwrap_or_else(|| "Accounting".into());
        if !SOURCE_TYPES.contains(&source_type.as_str()) {
            return bad(format!("[{index}].sourceType must be one of {}", SOURCE_TYPES.join(", ")));
        }
        let key = match c.integration_key {
            Some(key) if key.len() == 4 && key.bytes().all(|b| b.is_ascii_lowercase()) => key,
            Some(_) => return bad(format!("[{index}].integrationKey must be four lower-case letters")),
            None => integration_by_name(name).map_or_else(|| made_up_key(name), |i| i.key.to_string()),
        };
        let id = match c.id.as_deref().map(parse_uuid) {
            None => uuid::Uuid::new_v4().to_string(),
            Some(Some(id)) => id,
            Some(None) => return bad(format!("[{index}].id must be a uuid")),
        };
        if connections.iter().any(|other| other.id == id) {
            return bad(format!("[{index}].id {id} is used twice"));
        }
        connections.push(connection(&company, id, &key, name, &status, &source_type, created.clone()));
    }
    let linked = connections.iter().filter(|c| c.source_type == "Accounting" && c.status == "Linked").count();
    if linked > 1 {
        return bad("A company can have only one linked accounting connection".into());
    }
    shared.lock().companies.entry(company).or_default().connections = Some(connections.clone());
    Json(json!({"connections": connections})).into_response()
}

/// What an upload carries, for `upload_refusal`.
pub struct Upload<'a> {
    pub file_name: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub size: usize,
}

/// The file's type as the table names types: its extension, and its content type's subtype,
/// both lower-cased and without an `x-` prefix (so FreeAgent's `X-PDF` and `X-PNG` are PDF
/// and PNG). It fits when either is listed: a client naming a PNG `receipt` still fits.
fn file_type_ok(types: &[&str], upload: &Upload) -> bool {
    let plain = |t: &str| {
        let t = t.trim().to_ascii_lowercase();
        t.strip_prefix("x-").map(str::to_string).unwrap_or(t)
    };
    let extension = upload.file_name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| plain(e));
    let subtype = upload.content_type.and_then(|c| c.split(';').next()?.split_once('/')).map(|(_, s)| plain(s));
    [extension, subtype].into_iter().flatten().any(|t| types.contains(&t.as_str()))
}

/// Whether Codat would refuse this upload because of the company's accounting software, per
/// the current YAML's "Integration-specific behavior" table of the upload endpoint. Applied to
/// current-API syncs only: the v1 YAML's upload endpoint has no such table (`None` for v1).
///
/// The integration is the company's linked accounting connection's (by `integrationKey`, else
/// by `platformName`). Every refusal is the endpoint's 400 `ErrorMessage` ("The request made is
/// not valid.") with one validation item for the transaction whose message names the
/// integration and the reason, as for transfers: the YAML gives the endpoint no other status
/// for a request it cannot carry out, and nothing is stored. Refused: no linked accounting
/// connection (nowhere to put the file; Codat pushes attachments to the accounting software
/// only), a platform the table does not list (Sync for Expenses supports no other), a
/// transaction type the integration takes no file for (QuickBooks Desktop: none), a file over
/// its limit (MB read as MiB), or a file type it does not list.
pub fn upload_refusal(
    company: &str,
    state: &Company,
    sync: Option<SyncKind>,
    transaction_id: &str,
    txn: &Txn,
    upload: &Upload,
) -> Option<Response> {
    if sync != Some(SyncKind::Current) {
        return None;
    }
    let refuse = |message: String| Some(invalid(vec![item_error(Some(transaction_id), message)]));
    let connections = connections_of(&normalize_id(company), Some(state));
    let Some(linked) = connections.iter().find(|c| c.source_type == "Accounting" && c.status == "Linked") else {
        return refuse(
            "The company has no linked accounting connection: attachments are uploaded to its accounting software"
                .into(),
        );
    };
    let platform = &linked.platform_name;
    let Some(integration) =
        integration_by_key(&linked.integration_key).or_else(|| integration_by_name(&linked.platform_name))
    else {
        return refuse(format!("{platform} does not support attachment upload for expenses"));
    };
    let kind = match txn.kind {
        TxnKind::Reimbursable => REIMBURSABLE.to_string(),
        _ => format!("expense-transactions.{}", txn.body.get("type").and_then(Value::as_str).unwrap_or("Unknown")),
    };
    match integration.takes {
        Takes::Nothing => return refuse(format!("{platform} does not support attachment upload")),
        Takes::Only(kinds) if !kinds.contains(&kind.as_str()) => {
            return refuse(format!(
                "{platform} does not support attachments for {kind}; it supports them for {}",
                kinds.join(", ")
            ))
        }
        _ => {}
    }
    let max = integration.max_mib * 1024 * 1024;
    if upload.size > max {
        return refuse(format!(
            "{platform} takes attachments of at most {} MB ({max} bytes); this file is {} bytes",
            integration.max_mib, upload.size
        ));
    }
    if let Some(types) = integration.file_types {
        if !file_type_ok(types, upload) {
            let named = upload.file_name.or(upload.content_type).unwrap_or("(unnamed)");
            return refuse(format!(
                "{platform} does not support the file type of {named}; it supports {}",
                types.iter().map(|t| t.to_ascii_uppercase()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    None
}
