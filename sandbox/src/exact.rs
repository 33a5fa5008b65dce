//! Money read exactly: request bodies are kept as their JSON text (`RawValue`), and amounts are
//! read from that text straight into `Decimal`, never through a float.
//!
//! `Decimal` holds what Codat's .NET `decimal` holds: a 96-bit integer scaled by 10^0 to 10^28,
//! so at most 79228162514264337593543950335 in magnitude, 28 decimal places and 28-29
//! significant digits. An amount outside that is refused rather than rounded.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON object's properties as exact text; a repeated key keeps its last value, as in `Value`.
type RawObject = BTreeMap<String, Box<RawValue>>;

/// As deep as `serde_json` reads a `Value`; deeper bodies are refused, never walked.
const MAX_DEPTH: usize = 128;

/// Why an amount is refused, for the validation message.
pub const DECIMAL_LIMITS: &str = "a number a .NET decimal holds exactly: at most 28 decimal places and 29 significant \
                                  digits, within ±79228162514264337593543950335";

/// A request body as exact JSON text (checked to be JSON, numbers not yet read).
pub fn parse(bytes: &[u8]) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The items of a JSON array, each as its exact text; `None` when it is not an array.
pub fn elements(raw: &RawValue) -> Option<Vec<Box<RawValue>>> {
    serde_json::from_str(raw.get()).ok()
}

/// One property of a JSON object as its exact text; `None` when absent or not an object.
pub fn property(raw: &RawValue, key: &str) -> Option<Box<RawValue>> {
    serde_json::from_str::<RawObject>(raw.get()).ok()?.remove(key)
}

/// `raw` as a `Value` for the shape checks. A number a float cannot hold (`1e400`) reads as 0
/// there, so the body still gets its field-by-field answer; the amount checks refuse it.
pub fn value(raw: &RawValue) -> Result<Value, serde_json::Error> {
    serde_json::from_str(raw.get()).or_else(|error| lenient(raw, 0).ok_or(error))
}

fn lenient(raw: &RawValue, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    match raw.get().as_bytes().first()? {
        b'[' => {
            let items = elements(raw)?;
            items.iter().map(|item| lenient(item, depth + 1)).collect::<Option<Vec<_>>>().map(Value::Array)
        }
        b'{' => {
            let object: RawObject = serde_json::from_str(raw.get()).ok()?;
            let fields = object.into_iter().map(|(key, item)| Some((key, lenient(&item, depth + 1)?)));
            fields.collect::<Option<serde_json::Map<_, _>>>().map(Value::Object)
        }
        _ if is_number(raw) => Some(serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::from(0))),
        // Other scalars fail only on bad escapes (a lone surrogate): the body stays refused.
        _ => serde_json::from_str(raw.get()).ok(),
    }
}

fn is_number(raw: &RawValue) -> bool {
    raw.get().as_bytes().first().is_some_and(|b| *b == b'-' || b.is_ascii_digit())
}

/// One line's amounts as exact text (`None`: absent or null).
#[derive(Debug, Default)]
pub struct LineAmounts {
    pub net: Option<Box<RawValue>>,
    pub tax: Option<Box<RawValue>>,
}

/// A transaction's amounts as exact text.
#[derive(Debug, Default)]
pub struct Amounts {
    pub currency_rate: Option<Box<RawValue>>,
    pub lines: Vec<LineAmounts>,
}

impl Amounts {
    /// `None` when the transaction or its lines are not objects (the shape checks say so).
    pub fn read(transaction: &RawValue) -> Option<Self> {
        let mut object: RawObject = serde_json::from_str(transaction.get()).ok()?;
        let lines = match non_null(object.remove("lines")) {
            None => Vec::new(),
            Some(lines) => serde_json::from_str::<Vec<RawObject>>(lines.get()).ok()?,
        };
        let lines = lines
            .into_iter()
            .map(|mut line| LineAmounts {
                net: non_null(line.remove("netAmount")),
                tax: non_null(line.remove("taxAmount")),
            })
            .collect();
        Some(Self { currency_rate: non_null(object.remove("currencyRate")), lines })
    }

    /// Every amount with its path in the transaction (`lines[0].netAmount`).
    fn each(&self) -> impl Iterator<Item = (String, &RawValue)> {
        let rate = self.currency_rate.as_deref().map(|rate| ("currencyRate".to_string(), rate));
        let lines = self.lines.iter().enumerate().flat_map(|(index, line)| {
            let net = line.net.as_deref().map(|net| (format!("lines[{index}].netAmount"), net));
            let tax = line.tax.as_deref().map(|tax| (format!("lines[{index}].taxAmount"), tax));
            net.into_iter().chain(tax)
        });
        rate.into_iter().chain(lines)
    }
}

fn non_null(raw: Option<Box<RawValue>>) -> Option<Box<RawValue>> {
    raw.filter(|raw| raw.get() != "null")
}

/// One message per amount of the transaction that a .NET decimal cannot hold exactly
/// (`lines[0].netAmount must be ...`). Amounts that are not numbers are left to the shape checks.
pub fn amount_errors(transaction: &RawValue) -> Vec<String> {
    let Some(amounts) = Amounts::read(transaction) else { return Vec::new() };
    amounts
        .each()
        .filter(|(_, raw)| is_number(raw) && decimal(raw.get()).is_none())
        .map(|(path, _)| format!("{path} must be {DECIMAL_LIMITS}"))
        .collect()
}

/// The values at `path` (`from.amount`; `lines[].amount` takes every item of `lines`), each with
/// its concrete path (`lines[1].amount`). Absent and null values are left out, as is anything
/// under a value of the wrong shape (the shape checks say so).
pub fn values_at(raw: &RawValue, path: &str) -> Vec<(String, Box<RawValue>)> {
    let mut found = vec![(String::new(), raw.to_owned())];
    for step in path.split('.') {
        let (key, each) = step.strip_suffix("[]").map_or((step, false), |key| (key, true));
        found = found
            .into_iter()
            .flat_map(|(at, raw)| {
                let at = if at.is_empty() { key.to_string() } else { format!("{at}.{key}") };
                let value = non_null(property(&raw, key));
                match (value, each) {
                    (None, _) => Vec::new(),
                    (Some(value), false) => vec![(at, value)],
                    (Some(value), true) => {
                        let items = elements(&value).unwrap_or_default().into_iter().enumerate();
                        items.map(|(index, item)| (format!("{at}[{index}]"), item)).collect()
                    }
                }
            })
            .filter(|(_, raw)| raw.get() != "null")
            .collect();
    }
    found
}

/// [`amount_errors`] for amounts at the given paths (see [`values_at`]).
pub fn amount_errors_at(transaction: &RawValue, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|path| values_at(transaction, path))
        .filter(|(_, raw)| is_number(raw) && decimal(raw.get()).is_none())
        .map(|(path, _)| format!("{path} must be {DECIMAL_LIMITS}"))
        .collect()
}

/// `raw` for comparing two bodies by meaning: key order and spacing do not count, and each
/// number becomes its exact value as text, so `100`, `100.00` and `1E+2` are the same while
/// `0.1` and `0.1000000000000000055511151231257827` differ. `None` when it is not JSON.
pub fn canonical(raw: &RawValue) -> Option<Value> {
    canonical_at(raw, 0)
}

fn canonical_at(raw: &RawValue, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    match raw.get().as_bytes().first()? {
        b'[' => {
            elements(raw)?.iter().map(|item| canonical_at(item, depth + 1)).collect::<Option<_>>().map(Value::Array)
        }
        b'{' => {
            let object: RawObject = serde_json::from_str(raw.get()).ok()?;
            let fields = object.into_iter().map(|(key, item)| Some((key, canonical_at(&item, depth + 1)?)));
            fields.collect::<Option<serde_json::Map<_, _>>>().map(Value::Object)
        }
        _ if is_number(raw) => {
            let exact = decimal(raw.get()).map(|d| d.normalize().to_string());
            Some(Value::String(exact.unwrap_or_else(|| raw.get().to_string())))
        }
        _ => serde_json::from_str(raw.get()).ok(),
    }
}

/// A JSON number's text as the exact `Decimal`; `None` when it is not a number or a .NET
/// decimal cannot hold it without rounding (`1e400`, `9e28`, `1e-40`, 34 significant digits).
pub fn decimal(number: &str) -> Option<Decimal> {
    let (negative, unsigned) = number.strip_prefix('-').map_or((false, number), |rest| (true, rest));
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let exponent = exponent_value(exponent)?;
    if whole.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Some(Decimal::ZERO);
    }
    let trailing_zeros = digits.len() - digits.trim_end_matches('0').len();
    // The value is `significant` × 10^power; a body is at most 20 MB, so this cannot overflow.
    let power = exponent - fraction.len() as i64 + trailing_zeros as i64;
    let scale = u32::try_from(-power.min(0)).ok().filter(|scale| *scale <= 28)?;
    let zeros = usize::try_from(power.max(0)).ok().filter(|zeros| significant.len() + zeros <= 29)?;
    let integer: i128 = format!("{significant}{}", "0".repeat(zeros)).parse().ok()?;
    Decimal::try_from_i128_with_scale(if negative { -integer } else { integer }, scale).ok()
}

/// An exponent's value; one with more than 9 digits reads as ±10^9, far past any decimal.
fn exponent_value(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = if digits.trim_start_matches('0').len() > 9 { 1_000_000_000 } else { digits.parse().ok()? };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::{amount_errors, amount_errors_at, canonical, decimal, value, values_at};
    use serde_json::json;

    #[test]
    fn decimals_are_read_exactly_or_not_at_all() {
        let held = [
            ("0", "0"),
            ("-0.0e-400", "0"),
            ("12345678901234567.89", "12345678901234567.89"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
            ("-79228162514264337593543950335", "-79228162514264337593543950335"),
            ("0.0000000000000000000000000001", "0.0000000000000000000000000001"),
            ("1.000000000000000000000000000000000", "1"),
            ("1E+2", "100"),
            ("25e-1", "2.5"),
            ("7.9228162514264337593543950335e28", "79228162514264337593543950335"),
        ];
        for (text, expected) in held {
            assert_eq!(decimal(text).map(|d| d.normalize().to_string()).as_deref(), Some(expected), "{text}");
        }
        let refused = [
            "1e400",
            "-1e400",
            "9e28",
            "79228162514264337593543950336",
            "1e-40",
            "0.00000000000000000000000000001",
            "0.1000000000000000055511151231257827",
            "1e99999999999999999999",
            "\"12\"",
            "true",
            ".5",
            "",
        ];
        for text in refused {
            assert_eq!(decimal(text), None, "{text}");
        }
    }

    #[test]
    fn out_of_range_numbers_read_as_zero_for_the_shape_checks() {
        let raw =
            super::parse(br#"[{"lines": [{"netAmount": 1e400, "taxAmount": 2}], "notes": -1e999}]"#).expect("json");
        assert_eq!(value(&raw).expect("lenient"), json!([{"lines": [{"netAmount": 0, "taxAmount": 2}], "notes": 0}]));
        let surrogate = super::parse(br#"[{"notes": "\ud800", "n": 1e400}]"#).expect("json");
        assert!(value(&surrogate).is_err(), "a bad escape is still refused");
        let deep = super::parse(format!("{}1e400{}", "[".repeat(200), "]".repeat(200)).as_bytes()).expect("json");
        assert!(value(&deep).is_err(), "too deep to walk");
    }

    #[test]
    fn amount_errors_name_each_field() {
        let raw = super::parse(
            br#"{"currencyRate": 1e-40, "lines": [{"netAmount": 1, "taxAmount": null}, {"netAmount": 9e28, "taxAmount": "x"}]}"#,
        )
        .expect("json");
        let errors = amount_errors(&raw);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("currencyRate must be a number a .NET decimal holds exactly"), "{errors:?}");
        assert!(errors[1].starts_with("lines[1].netAmount must be"), "{errors:?}");
        assert!(
            amount_errors(&super::parse(b"[1]").expect("json")).is_empty(),
            "not an object: the shape checks say so"
        );
    }

    #[test]
    fn values_are_found_by_path() {
        let raw = super::parse(
            br#"{"from": {"amount": 1.50}, "to": null, "lines": [{"amount": 2}, {"amount": null}, {"amount": 3e2}]}"#,
        )
        .expect("json");
        let found: Vec<(String, String)> = ["from.amount", "to.amount", "lines[].amount", "missing[].amount"]
            .iter()
            .flat_map(|path| values_at(&raw, path))
            .map(|(path, raw)| (path, raw.get().to_string()))
            .collect();
        let expected = [("from.amount", "1.50"), ("lines[0].amount", "2"), ("lines[2].amount", "3e2")];
        assert_eq!(found, expected.map(|(p, v)| (p.to_string(), v.to_string())));
        let bad = super::parse(br#"{"from": {"amount": 1e400}, "lines": [{"amount": 1e-40}, {"amount": "x"}]}"#)
            .expect("json");
        let errors = amount_errors_at(&bad, &["from.amount", "lines[].amount"]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("from.amount must be a number a .NET decimal"), "{errors:?}");
        assert!(errors[1].starts_with("lines[0].amount must be"), "{errors:?}");
    }

    #[test]
    fn canonical_bodies_compare_by_meaning() {
        let canonical = |text: &str| canonical(&super::parse(text.as_bytes()).expect("json")).expect("canonical");
        assert_eq!(canonical(r#"{"a": 100, "b": [1E+2, "x"]}"#), canonical(r#"{ "b": [100.00, "x"], "a": 1e2 }"#));
        assert_ne!(canonical(r#"{"a": 0.1}"#), canonical(r#"{"a": 0.1000000000000000055511151231257827}"#));
        assert_ne!(canonical(r#"{"a": 1}"#), canonical(r#"{"a": 1, "b": null}"#));
        assert_eq!(canonical(r#"{"a": 1e400}"#)["a"], "1e400", "beyond a decimal: compared as written");
    }
}
