//! Schema checks for the current API's request bodies, one small rule per function.
//!
//! Each check appends readable messages (`lines[0].netAmount is required and must be a number`)
//! instead of stopping at the first problem, as Codat lists every validation error.

use chrono::{Datelike, NaiveTime};
use serde_json::{Map, Value};

use crate::errors::parse_uuid;

pub type Object = Map<String, Value>;

/// Whether a property must be there, may be left out, or may also be `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    Nullable,
}

/// Collects messages, each prefixed with where in the body it applies.
#[derive(Debug, Default)]
pub struct Errors {
    pub messages: Vec<String>,
}

impl Errors {
    pub fn push(&mut self, at: &str, message: impl std::fmt::Display) {
        self.messages.push(format!("{at}{message}"));
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// The value of `key`, or `None` after recording a problem (or when it may be, and is, absent/null).
fn present<'a>(object: &'a Object, key: &str, presence: Presence, at: &str, errors: &mut Errors) -> Option<&'a Value> {
    match (object.get(key), presence) {
        (None, Presence::Required) | (Some(Value::Null), Presence::Required) => {
            errors.push(at, format!("{key} is required"));
            None
        }
        (Some(Value::Null), Presence::Optional) => {
            errors.push(at, format!("{key} must not be null"));
            None
        }
        (None, _) | (Some(Value::Null), _) => None,
        (Some(value), _) => Some(value),
    }
}

/// Every property not in `known` is refused, by name.
pub fn known_properties(object: &Object, known: &[&str], schema: &str, at: &str, errors: &mut Errors) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(at, format!("{key} is not a property of {schema}"));
    }
}

/// A uuid; returns it in canonical form.
pub fn uuid(object: &Object, key: &str, at: &str, errors: &mut Errors) -> Option<String> {
    let value = present(object, key, Presence::Required, at, errors)?;
    let id = value.as_str().and_then(parse_uuid);
    if id.is_none() {
        errors.push(at, format!("{key} must be a uuid"));
    }
    id
}

pub fn string(object: &Object, key: &str, presence: Presence, at: &str, errors: &mut Errors) {
    if present(object, key, presence, at, errors).is_some_and(|v| !v.is_string()) {
        errors.push(at, format!("{key} must be a string"));
    }
}

/// A string from a closed list.
pub fn one_of(object: &Object, key: &str, allowed: &[&str], presence: Presence, at: &str, errors: &mut Errors) {
    let Some(value) = present(object, key, presence, at, errors) else { return };
    if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
        errors.push(at, format!("{key} must be one of {}, got {value}", allowed.join(", ")));
    }
}

pub fn number(object: &Object, key: &str, presence: Presence, at: &str, errors: &mut Errors) {
    if present(object, key, presence, at, errors).is_some_and(|v| !v.is_number()) {
        errors.push(at, format!("{key} must be a number"));
    }
}

pub fn boolean(object: &Object, key: &str, presence: Presence, at: &str, errors: &mut Errors) {
    if present(object, key, presence, at, errors).is_some_and(|v| !v.is_boolean()) {
        errors.push(at, format!("{key} must be a boolean"));
    }
}

/// Codat's date-time: `2022-10-23T00:00:00Z`, with an offset, unqualified local time, or a date.
/// Codat reads it as a .NET `DateTime`, so the year must be 0001 to 9999 (four digits, no sign),
/// also once an offset is applied.
pub fn is_date_time(text: &str) -> bool {
    if is_offset_date_time(text) {
        return true;
    }
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|day| day.and_time(NaiveTime::MIN)));
    four_digit_year(text) && local.is_ok_and(|at| dotnet_year(&at))
}

/// An RFC 3339 date-time (v1 takes only these) within a .NET `DateTime`, local and in UTC.
pub fn is_offset_date_time(text: &str) -> bool {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) else { return false };
    four_digit_year(text) && dotnet_year(&at.naive_local()) && dotnet_year(&at.naive_utc())
}

/// chrono also reads `+10000-01-01` and `-0001-01-01`; .NET reads only four digits.
fn four_digit_year(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

/// `DateTime.MinValue` is 0001-01-01, `MaxValue` the end of 9999.
fn dotnet_year(at: &chrono::NaiveDateTime) -> bool {
    (1..=9999).contains(&at.year())
}

pub fn date_time(object: &Object, key: &str, presence: Presence, at: &str, errors: &mut Errors) {
    let Some(value) = present(object, key, presence, at, errors) else { return };
    if !value.as_str().is_some_and(is_date_time) {
        let message = "must be a date-time (2022-10-23T00:00:00Z) or a date (2022-10-23) with a year from 0001 to 9999";
        errors.push(at, format!("{key} {message}"));
    }
}

/// A reference object: a string `id` (required) plus optional enum-valued properties.
pub fn reference(
    object: &Object,
    key: &str,
    schema: &str,
    extra: &[(&str, &[&str])],
    presence: Presence,
    at: &str,
    errors: &mut Errors,
) {
    let Some(value) = present(object, key, presence, at, errors) else { return };
    check_reference(value, schema, extra, &format!("{at}{key}."), errors);
}

/// A reference object already taken out of its parent (an array item); `at` ends with `.`.
pub fn check_reference(value: &Value, schema: &str, extra: &[(&str, &[&str])], at: &str, errors: &mut Errors) {
    let Some(reference) = value.as_object() else {
        return errors.push(at.trim_end_matches('.'), format!(" must be a {schema} object"));
    };
    let mut known = vec!["id"];
    known.extend(extra.iter().map(|(name, _)| *name));
    known_properties(reference, &known, schema, at, errors);
    string(reference, "id", Presence::Required, at, errors);
    for (name, allowed) in extra {
        one_of(reference, name, allowed, Presence::Optional, at, errors);
    }
}

/// A required nested object with only the `known` properties, its own fields checked by
/// `fields` with the prefix `{at}{key}.` (`from.amount is required`).
pub fn object(
    object: &Object,
    key: &str,
    schema: &str,
    known: &[&str],
    at: &str,
    errors: &mut Errors,
    fields: impl FnOnce(&Object, &str, &mut Errors),
) {
    let Some(value) = present(object, key, Presence::Required, at, errors) else { return };
    let Some(inner) = value.as_object() else { return errors.push(at, format!("{key} must be a {schema} object")) };
    let at = format!("{at}{key}.");
    known_properties(inner, known, schema, &at, errors);
    fields(inner, &at, errors);
}

/// An array of `min..=max` items, each checked by `item` with its own prefix.
pub fn array(
    object: &Object,
    key: &str,
    (min, max): (usize, usize),
    presence: Presence,
    at: &str,
    errors: &mut Errors,
    mut item: impl FnMut(&Value, &str, &mut Errors),
) {
    let Some(value) = present(object, key, presence, at, errors) else { return };
    let Some(items) = value.as_array() else { return errors.push(at, format!("{key} must be an array")) };
    if !(min..=max).contains(&items.len()) {
        errors.push(at, format!("{key} must hold {min} to {max} items, got {}", items.len()));
    }
    for (index, value) in items.iter().enumerate() {
        item(value, &format!("{at}{key}[{index}]."), errors);
    }
}

const TRACKING_DATA_TYPES: &[&str] = &["trackingCategories", "customers"];

/// `ExpenseTransactionLine`, or with `description` the `ReimbursableExpenseTransactionLine`.
pub fn line(value: &Value, reimbursable: bool, at: &str, errors: &mut Errors) {
    let (schema, known): (&str, &[&str]) = if reimbursable {
        (
            "ReimbursableExpenseTransactionLine",
            &[
                "description",
                "netAmount",
                "taxAmount",
                "taxRateRef",
                "accountRef",
                "itemRef",
                "trackingRefs",
                "invoiceTo",
            ],
        )
    } else {
        (
            "ExpenseTransactionLine",
            &["netAmount", "taxAmount", "taxRateRef", "accountRef", "itemRef", "trackingRefs", "invoiceTo"],
        )
    };
    let Some(line) = value.as_object() else { return errors.push(at.trim_end_matches('.'), " must be an object") };
    known_properties(line, known, schema, at, errors);
    if reimbursable {
        string(line, "description", Presence::Optional, at, errors);
    }
    number(line, "netAmount", Presence::Required, at, errors);
    number(line, "taxAmount", Presence::Optional, at, errors);
    reference(line, "taxRateRef", "RecordRef", &[], Presence::Optional, at, errors);
    reference(line, "accountRef", "RecordRef", &[], Presence::Optional, at, errors);
    reference(line, "itemRef", "ItemRef", &[], Presence::Nullable, at, errors);
    array(line, "trackingRefs", (1, 10), Presence::Nullable, at, errors, |item, at, errors| {
        check_reference(item, "TrackingRef", &[("dataType", TRACKING_DATA_TYPES)], at, errors)
    });
    reference(line, "invoiceTo", "InvoiceTo", &[("type", &["customer"])], Presence::Nullable, at, errors);
}
