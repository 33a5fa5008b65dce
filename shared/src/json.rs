//! Strict JSON at the edges: a body is one document of exactly the expected shape, and money
//! keeps its exact digits both ways.
//!
//! * [`parse`] names the JSON path of whatever is wrong and refuses trailing data.
//! * [`Object`] takes only a JSON object: serde's derived `Deserialize` would also take an
//!   array of a struct's fields in order (`"accountRef": ["42"]`).
//! * [`exact_decimal`] reads a number from its JSON text, never through an `f64`, and
//!   [`number`] writes a decimal back as a JSON number with exactly its digits.

use std::fmt;
use std::marker::PhantomData;

use rust_decimal::Decimal;
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::domain::ValidationError;

/// Parses one JSON document into `T`, or names the field that is wrong (`body` for the whole).
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ValidationError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde reports a missing field against its parent object: name the field itself.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            let field_path = if path == "." { field.to_string() } else { format!("{path}.{field}") };
            return ValidationError::new(field_path, "is required");
        }
        // Malformed JSON: name the innermost field known (never serde's `?` for a key not read
        // yet), and keep the position, which is all that locates the bad bytes.
        if inner.is_syntax() || inner.is_eof() {
            let known = path.trim_end_matches('?').trim_end_matches('.');
            let field = if known.is_empty() { "body".to_string() } else { known.to_string() };
            return ValidationError::new(field, format!("malformed JSON: {message}"));
        }
        let field = if path == "." { "body".to_string() } else { path };
        ValidationError::new(field, strip_position(&message))
    })?;
    // A second document or trailing bytes would otherwise be dropped without a word.
    de.end().map_err(|e| ValidationError::new("body", format!("trailing data after the JSON document: {e}")))?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// A value that must be written as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<T> Object<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize> Serialize for Object<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// Exponents beyond this cannot be exact decimals; refusing them early bounds the work.
const MAX_EXPONENT: i64 = 60;

/// Reads a JSON number as a decimal with exactly the digits written (`1.50` keeps its scale).
pub fn exact_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    decimal_from_json(raw.get()).map_err(de::Error::custom)
}

/// [`exact_decimal`] for an optional field (`null` or absent is `None`).
pub fn exact_decimal_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Box<RawValue>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(raw) => decimal_from_json(raw.get()).map(Some).map_err(de::Error::custom),
    }
}

/// The decimal a JSON number's text denotes, exactly, or why it cannot be one.
pub fn decimal_from_json(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err("must be a JSON number".into());
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().map_err(|_| "is not a valid number".to_string())?),
        None => (text, 0),
    };
    if exponent.abs() > MAX_EXPONENT {
        return Err("is out of range".into());
    }
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    // Move the decimal point by the exponent, then read the plain form exactly.
    let all: String = [whole, fraction].concat();
    let point = whole.len() as i64 + exponent;
    let plain = if point <= 0 {
        format!("0.{}{all}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= all.len() {
        format!("{all}{}", "0".repeat(point as usize - all.len()))
    } else {
        format!("{}.{}", &all[..point as usize], &all[point as usize..])
    };
    let plain = if negative { format!("-{plain}") } else { plain };
    Decimal::from_str_exact(&plain).map_err(|_| "has more digits than an exact decimal holds (28)".to_string())
}

/// Writes a decimal as a JSON number with exactly its digits (for JSON bodies only).
pub fn number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    RawValue::from_string(value.to_string()).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

/// [`number`] for an optional field; pair with `skip_serializing_if = "Option::is_none"`.
pub fn number_opt<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => number(value, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        id: String,
    }

    #[derive(Debug, Deserialize)]
    struct Outer {
        inner: Object<Inner>,
        #[serde(deserialize_with = "exact_decimal")]
        amount: Decimal,
        #[serde(default, deserialize_with = "exact_decimal_opt")]
        rate: Option<Decimal>,
    }

    #[test]
    fn arrays_are_not_objects() {
        let err = parse::<Object<Outer>>(br#"{"inner": ["42"], "amount": 1}"#).unwrap_err();
        assert_eq!(err.field, "inner", "{err}");
        assert!(err.message.contains("expected an object"), "{err}");
        assert_eq!(parse::<Object<Outer>>(br#"[{"id": "1"}, 1]"#).unwrap_err().field, "body");
        let ok = parse::<Object<Outer>>(br#"{"inner": {"id": "42"}, "amount": 1}"#).unwrap();
        assert_eq!(ok.inner.id, "42");
        assert_eq!(ok.rate, None);
    }

    #[test]
    fn decimals_keep_their_exact_digits() {
        for (text, expected) in [
            ("12345678901234567.89", "12345678901234567.89"),
            ("0.1000000000000000055511151231", "0.1000000000000000055511151231"),
            ("1.50", "1.50"),
            ("-0.01", "-0.01"),
            ("1e2", "100"),
            ("1.5E-3", "0.0015"),
            ("2.5e+1", "25"),
            ("0", "0"),
        ] {
            let body = format!(r#"{{"inner": {{"id": "x"}}, "amount": {text}, "rate": {text}}}"#);
            let parsed = parse::<Object<Outer>>(body.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.amount.to_string(), expected, "{text}");
            assert_eq!(parsed.rate.unwrap().to_string(), expected, "{text}");
            let written = serde_json::to_string(&Written { amount: parsed.amount }).unwrap();
            assert_eq!(written, format!(r#"{{"amount":{expected}}}"#));
        }
    }

    #[derive(Serialize)]
    struct Written {
        #[serde(serialize_with = "number")]
        amount: Decimal,
    }

    #[test]
    fn numbers_no_decimal_can_hold_are_refused() {
        for text in ["1e400", "9e28", "1e-40", "123456789012345678901234567890", "\"12\"", "1e99999999999999999999"] {
            let body = format!(r#"{{"inner": {{"id": "x"}}, "amount": {text}}}"#);
            let err = parse::<Object<Outer>>(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, "amount", "{text}: {err}");
        }
    }
}
