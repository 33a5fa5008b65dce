//! What a valid value of each kind of intake field is: money, currencies, dates, ids, text,
//! file names and receipt bytes. Each check names the field it was given when it refuses.

use rust_decimal::Decimal;

use super::ValidationError;

/// Amounts and rates must stay below this magnitude: 13 integer digits, far above any real
/// expense, and well inside what Codat's decimals and the accounting software hold.
pub const MAX_AMOUNT_DIGITS: u32 = 13;
/// Codat keeps currency rates to 9 decimal places (`currencyRate` in both YAMLs).
pub const RATE_DECIMAL_PLACES: u32 = 9;
/// Ids from the company's mapping options, contacts and tracking categories.
pub const MAX_ID_CHARS: usize = 255;
/// Free text: references, merchant names, notes and line descriptions.
pub const MAX_TEXT_CHARS: usize = 1000;
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// An ISO 4217 currency with its minor units (decimal places).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub minor_units: u32,
}

/// An active or superseded ISO 4217 code that has minor units: funds like CLF count, while
/// metals, test and "no currency" codes (XAU, XTS, XXX...) are not money an expense is paid in.
pub fn currency(code: &str, field: &str) -> Result<Currency, ValidationError> {
    iso_currency::Currency::from_code(code)
        .filter(|c| c.code() == code)
        .and_then(|c| c.exponent())
        .map(|units| Currency { minor_units: u32::from(units) })
        .ok_or_else(|| ValidationError::new(field, "must be an ISO 4217 currency code such as GBP"))
}

fn max_amount() -> Decimal {
    Decimal::from(10i64.pow(MAX_AMOUNT_DIGITS))
}

/// An amount in `currency`: no more decimal places than it has (trailing zeros aside).
pub fn amount(value: Decimal, currency: Currency, code: &str, field: &str) -> Result<(), ValidationError> {
    if value.abs() >= max_amount() {
        return Err(ValidationError::new(
            field,
            format!("must have at most {MAX_AMOUNT_DIGITS} digits before the decimal point"),
        ));
    }
    if value.normalize().scale() > currency.minor_units {
        return Err(ValidationError::new(
            field,
            format!("has more decimal places than {code} has ({})", currency.minor_units),
        ));
    }
    Ok(())
}

/// A currency rate: positive, at most 9 decimal places.
pub fn rate(value: Decimal, field: &str) -> Result<(), ValidationError> {
    if value <= Decimal::ZERO {
        return Err(ValidationError::new(field, "must be greater than 0"));
    }
    if value >= max_amount() {
        return Err(ValidationError::new(
            field,
            format!("must have at most {MAX_AMOUNT_DIGITS} digits before the decimal point"),
        ));
    }
    if value.normalize().scale() > RATE_DECIMAL_PLACES {
        return Err(ValidationError::new(field, format!("must have at most {RATE_DECIMAL_PLACES} decimal places")));
    }
    Ok(())
}

/// `YYYY-MM-DD` or an RFC 3339 date-time in years 0001 to 9999 (what Codat's date-times
/// hold), returned in Codat's date-time form.
pub fn date(value: &str, field: &str) -> Result<String, ValidationError> {
    canonical_date(value).ok_or_else(|| {
        ValidationError::new(
            field,
            "must be an ISO 8601 date or date-time in years 0001-9999, e.g. 2024-05-21 or 2024-05-21T00:00:00Z",
        )
    })
}

fn canonical_date(value: &str) -> Option<String> {
    use chrono::Datelike;
    let in_range = |year: i32| (1..=9999).contains(&year);
    if value.len() == 10 {
        let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
        return in_range(date.year()).then(|| format!("{}T00:00:00Z", date.format("%Y-%m-%d")));
    }
    let moment = chrono::DateTime::parse_from_rfc3339(value).ok()?;
    (in_range(moment.year()) && in_range(moment.naive_utc().year())).then(|| moment.to_rfc3339())
}

/// An id: not blank, at most 255 characters, no control or disguising characters.
pub fn id(value: &str, field: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_ID_CHARS || value.chars().any(|c| c.is_control() || disguises(c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_ID_CHARS} characters, without control, bidirectional or invisible characters"
            ),
        ));
    }
    Ok(())
}

/// Free text (notes, descriptions): at most 1000 characters; tabs and line breaks are fine,
/// other control characters (terminal escapes), bidirectional overrides
/// (`Cab\u{202E}gnp.exe`), invisible ones (zero-width space, byte order mark) and line
/// separators are not. Joiners and direction marks stay: scripts and emoji need them.
pub fn text(value: &str, field: &str) -> Result<(), ValidationError> {
    checked_text(value, field, |c| matches!(c, '\t' | '\n' | '\r'))
}

/// One line of text (references, merchant names): [`text`] without tabs or line breaks.
pub fn line(value: &str, field: &str) -> Result<(), ValidationError> {
    checked_text(value, field, |_| false)
}

fn checked_text(value: &str, field: &str, allowed_control: impl Fn(char) -> bool) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(ValidationError::new(field, format!("must be at most {MAX_TEXT_CHARS} characters")));
    }
    let hostile = |c: char| {
        (c.is_control() && !allowed_control(c))
            || matches!(c, '\u{200B}' | '\u{2028}'..='\u{202E}' | '\u{2060}' | '\u{FEFF}')
    };
    if value.chars().any(hostile) {
        return Err(ValidationError::new(
            field,
            "must not hold control, invisible or bidirectional-override characters",
        ));
    }
    Ok(())
}

/// Characters that make a name display as something else, or as nothing: Unicode's format
/// characters (bidirectional marks, overrides, embeddings and isolates, zero-width ones, the
/// Arabic letter mark, soft hyphen...) and line or paragraph separators.
/// `invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`.
fn disguises(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// A plain file name: 1 to 255 characters, no path (not even percent-encoded), no control or
/// disguising characters.
pub fn file_name(value: &str, field: &str) -> Result<String, ValidationError> {
    // Only plain spaces are trimmed: a leading line separator is refused, not hidden.
    let name = value.trim_matches(' ');
    let lower = name.to_ascii_lowercase();
    let plain = !name.is_empty()
        && name.chars().count() <= MAX_FILE_NAME_CHARS
        && name != "."
        && name != ".."
        && !["%2f", "%5c", "%2e%2e"].iter().any(|encoded| lower.contains(encoded))
        && !name.chars().any(|c| c.is_control() || disguises(c) || c == '/' || c == '\\');
    if !plain {
        return Err(ValidationError::new(
            field,
            format!(
                "must be a plain file name of 1 to {MAX_FILE_NAME_CHARS} characters, without paths, control, bidirectional or invisible characters"
            ),
        ));
    }
    Ok(name.to_string())
}

/// Whether `bytes` are a file of `content_type`: the signature the format starts with, and
/// the structure right after it and at its end, so a signature glued onto something else
/// (`GIF89a;<?php ...`, a PNG signature before HTML) is not taken for an image.
pub fn is_file_of_type(content_type: &str, bytes: &[u8]) -> bool {
    match content_type {
        // `%PDF-1.7` ... `%%EOF` (within the last KiB, where readers look for it).
        "application/pdf" => {
            bytes.starts_with(b"%PDF-")
                && bytes.get(5).is_some_and(u8::is_ascii_digit)
                && bytes[bytes.len().saturating_sub(1024)..].windows(5).any(|w| w == b"%%EOF")
        }
        // Signature, then the IHDR chunk first and the IEND chunk last.
        "image/png" => {
            bytes.starts_with(b"\x89PNG\r\n\x1a\n")
                && bytes.get(12..16) == Some(b"IHDR".as_slice())
                && bytes.ends_with(b"IEND\xaeB`\x82")
        }
        // Start of image, then a marker (APPn, DQT, SOF...), not arbitrary bytes.
        "image/jpeg" => bytes.starts_with(b"\xff\xd8\xff") && bytes.get(3).is_some_and(|m| (0xC0..=0xFE).contains(m)),
        // Header, then the trailer byte every GIF ends with.
        "image/gif" => (bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) && bytes.ends_with(b";"),
        // RIFF is a container: audio (WAVE) and video (AVI) start the same way. Its size field
        // counts the rest of the file.
        "image/webp" => {
            bytes.len() >= 12
                && bytes.starts_with(b"RIFF")
                && &bytes[8..12] == b"WEBP"
                && u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize == bytes.len() - 8
        }
        _ => false,
    }
}

/// Content types we can recognise by their bytes.
pub const KNOWN_RECEIPT_TYPES: &[&str] = &["application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn currencies_are_iso_4217_with_minor_units() {
        assert_eq!(currency("GBP", "c").unwrap().minor_units, 2);
        assert_eq!(currency("JPY", "c").unwrap().minor_units, 0);
        assert_eq!(currency("KWD", "c").unwrap().minor_units, 3);
        assert_eq!(currency("CLF", "c").unwrap().minor_units, 4);
        for bad in ["ABC", "gbp", "GB", "GBPX", "XXX", "XAU", "XTS", ""] {
            assert!(currency(bad, "c").is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_fit_their_currency() {
        let gbp = currency("GBP", "c").unwrap();
        let jpy = currency("JPY", "c").unwrap();
        assert!(amount(d("110.42"), gbp, "GBP", "a").is_ok());
        assert!(amount(d("110.420"), gbp, "GBP", "a").is_ok());
        assert!(amount(d("-9999999999999.99"), gbp, "GBP", "a").is_ok());
        assert!(amount(d("1.234"), gbp, "GBP", "a").unwrap_err().message.contains("decimal places than GBP"));
        assert!(amount(d("1.5"), jpy, "JPY", "a").is_err());
        assert!(amount(d("10000000000000"), gbp, "GBP", "a").is_err());
        assert!(amount(d("18000000000000000000"), gbp, "GBP", "a").is_err());
        assert!(rate(d("1.123456789"), "r").is_ok());
        assert!(rate(d("1.1234567891"), "r").is_err());
        assert!(rate(d("0"), "r").is_err());
        assert!(rate(d("-1"), "r").is_err());
    }

    #[test]
    fn dates_are_codat_date_times_in_years_1_to_9999() {
        assert_eq!(date("2024-05-21", "d").unwrap(), "2024-05-21T00:00:00Z");
        assert_eq!(date("2024-05-21T10:00:00+02:00", "d").unwrap(), "2024-05-21T10:00:00+02:00");
        assert_eq!(date("0001-01-01", "d").unwrap(), "0001-01-01T00:00:00Z");
        for bad in [
            "+12345-01-01",
            "-0001-01-01",
            "10000-01-01",
            "0000-01-01",
            "2024-02-30",
            "21/05/2024",
            "9999-12-31T23:00:00-05:00",
            "0001-01-01T00:30:00+01:00",
            "2024-5-1",
        ] {
            assert!(date(bad, "d").is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_cannot_disguise_themselves() {
        assert_eq!(file_name(" taxi.png ", "f").unwrap(), "taxi.png");
        assert!(file_name("reçu été.pdf", "f").is_ok());
        for bad in ["invoice\u{202E}fdp.exe", "a\u{200B}b.pdf", "a\u{2067}b.pdf", "../x.pdf", "a/b", "..", "", "a\nb"] {
            assert!(file_name(bad, "f").is_err(), "{bad:?}");
        }
        assert!(file_name(&"a".repeat(256), "f").is_err());
    }

    /// The smallest PNG our check takes: signature, IHDR, IEND.
    pub(crate) const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\0IEND\xaeB`\x82";

    #[test]
    fn receipts_are_recognised_by_their_bytes() {
        assert!(is_file_of_type("image/webp", b"RIFF\x08\0\0\0WEBPVP8 "));
        assert!(!is_file_of_type("image/webp", b"RIFF\x08\0\0\0WAVEfmt "));
        assert!(!is_file_of_type("image/webp", b"RIFF\xff\0\0\0WEBPVP8 "));
        assert!(!is_file_of_type("image/webp", b"RIFF"));
        assert!(is_file_of_type("application/pdf", b"%PDF-1.7\n1 0 obj\n%%EOF\n"));
        assert!(!is_file_of_type("application/pdf", b"%PDF-1.7"));
        assert!(!is_file_of_type("application/pdf", b"\x89PNG\r\n\x1a\n"));
        assert!(is_file_of_type("image/png", PNG));
        assert!(!is_file_of_type("image/png", b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script>"));
        assert!(is_file_of_type("image/jpeg", b"\xff\xd8\xff\xe0\0\x10JFIF"));
        assert!(!is_file_of_type("image/jpeg", b"\xff\xd8\xffPK\x03\x04"));
        assert!(is_file_of_type("image/gif", b"GIF89a\x01\0\x01\0\0\0\0;"));
        assert!(!is_file_of_type("image/gif", b"GIF89a;<?php system($_GET['c']); ?>"));
        assert!(!is_file_of_type("text/html", b"<html>"));
    }

    #[test]
    fn text_keeps_line_breaks_but_not_escapes_or_overrides() {
        assert!(text("Lunch\nwith the team\t(3)", "t").is_ok());
        assert!(text("שלום \u{200F}cafe", "t").is_ok());
        assert!(text("Cab\u{1b}[31mred", "t").is_err());
        assert!(text("Cab\u{202E}gnp.exe", "t").is_err());
        assert!(text("Cab\u{FEFF}", "t").is_err());
        assert!(line("two\nlines", "t").is_err());
        assert!(line("Café \u{200D}👩‍💻", "t").is_ok());
        assert!(id("42\u{202E}gnp.exe", "i").is_err());
        assert!(file_name("invoice\u{061C}gnp.exe", "f").is_err());
        assert!(file_name("\u{2028}taxi.png", "f").is_err());
        assert!(file_name("%2e%2e%2f%2e%2e%2fetc%2fpasswd", "f").is_err());
        assert!(file_name("50% off.pdf", "f").is_ok());
    }

    #[test]
    fn ids_are_bounded() {
        assert!(id("42", "i").is_ok());
        assert!(id(" ", "i").is_err());
        assert!(id(&"x".repeat(420_000), "i").is_err());
        assert!(id("a\u{0}b", "i").is_err());
    }
}
