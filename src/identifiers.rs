//! Party identifiers checked as the issuing country defines them: shape and check digit of
//! Argentina's CUIT, Brazil's CNPJ and CPF, Uruguay's RUT; and parties named by a decentralized
//! identifier (`did`: W3C DID syntax, `did:web:exporter.example`) or a URI (`uri`: an absolute
//! URI by RFC 3986's grammar), as credential standards name them. The region file maps each scheme to one of
//! these checks (`[identifier_schemes]`), so adding a scheme is a line of configuration plus,
//! for a new rule, one function here.
//!
//! Schemas ask for the check with the annotation `"x-identifier": true` on an object of
//! `scheme` and `value` (or `{"scheme": "<member>", "value": "<member>"}` naming other members);
//! the gateway's validator then refuses a value its scheme's check refuses, at the value's
//! pointer, with the rule in words. A scheme the region has no check for is taken as it is.
//!
//! A national scheme is named `COUNTRY-SCHEME` (`AR-CUIT`, `BR-CNPJ`, `UY-RUT`): its country
//! ([`scheme_country`]) is the one that issued the identifier, whatever address a document gives
//! the party. The gateway judges a party's country by it (an NSW acts for its own country's
//! parties), and finds the party a WCO-form UCR names by the schemes of the UCR's country.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// One check: `Ok` or why the value is not one, in a trader's words.
type CheckFn = fn(&str) -> Result<(), String>;

/// The checks the gateway has, by the name the region file uses.
const CHECKS: &[(&str, CheckFn)] =
    &[("ar-cuit", ar_cuit), ("br-cnpj", br_cnpj), ("br-cpf", br_cpf), ("uy-rut", uy_rut), ("did", did), ("uri", uri)];

/// The longest DID or URI taken as a party's identifier.
const MAX_URI_BYTES: usize = 2048;

/// A decentralized identifier as W3C's DID syntax writes it: `did:`, a method name of lowercase
/// letters and digits, `:`, and a method-specific identifier of letters, digits, `.`, `-`,
/// `_`, `%XX` and `:` (not ending with `:`).
pub fn did(value: &str) -> Result<(), String> {
    let example = "for example did:web:exporter.example.com";
    if value.len() > MAX_URI_BYTES {
        return Err(format!("a DID is at most {MAX_URI_BYTES} characters"));
    }
    let Some(rest) = value.strip_prefix("did:") else { return Err(format!("a DID starts with \"did:\", {example}")) };
    let Some((method, id)) = rest.split_once(':') else { return Err(format!("a DID is did:<method>:<identifier>, {example}")) };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(format!("a DID's method ({method:?}) is lowercase letters and digits, {example}"));
    }
    if id.is_empty() || id.ends_with(':') {
        return Err(format!("a DID's identifier after its method is not empty and does not end with \":\", {example}"));
    }
    let bytes = id.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => i += 3,
            b if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':') => i += 1,
            _ => return Err(format!("a DID's identifier is letters, digits, \".\", \"-\", \"_\", \":\" and %XX escapes, {example}")),
        }
    }
    Ok(())
}

/// An absolute URI (RFC 3986): a scheme, `:`, and the rest, no spaces.
pub fn uri(value: &str) -> Result<(), String> {
    let example = "for example https://exporter.example.com/org or urn:lei:5493001KJTIIGC8Y1R12";
    if value.len() > MAX_URI_BYTES {
        return Err(format!("a URI is at most {MAX_URI_BYTES} characters"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("a URI has no spaces, {example}"));
    }
    // RFC 3986's grammar (not a browser's URL rules), and absolute: a scheme, then ":".
    let scheme = value.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("not an absolute URI: it starts with a scheme and \":\", {example}"));
    }
    jsonschema::uri::from_str(value).map(|_| ()).map_err(|e| format!("not an absolute URI ({e}), {example}"))
}

/// The names of the checks, for messages.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|(n, _)| *n).collect()
}

/// The region's schemes and their checks.
#[derive(Debug, Clone, Default)]
pub struct IdentifierSchemes {
    by_scheme: BTreeMap<String, (&'static str, CheckFn)>,
}

impl IdentifierSchemes {
    /// From `[identifier_schemes]`: scheme -> check name. An unknown check name is an error
    /// naming the scheme.
    pub fn new(config: &BTreeMap<String, crate::config::IdentifierSchemeConfig>) -> Result<Self, String> {
        let mut by_scheme = BTreeMap::new();
        for (scheme, c) in config {
            let Some((name, check)) = CHECKS.iter().find(|(n, _)| *n == c.check) else {
                return Err(format!("[identifier_schemes.{scheme}] check = {:?}: the gateway has no such check; its checks: {}", c.check, check_names().join(", ")));
            };
            by_scheme.insert(scheme.clone(), (*name, *check));
        }
        Ok(IdentifierSchemes { by_scheme })
    }

    /// Checks `value` by `scheme`'s rule; a scheme without a check passes.
    pub fn check(&self, scheme: &str, value: &str) -> Result<(), String> {
        match self.by_scheme.get(scheme) {
            Some((_, check)) => check(value).map_err(|why| {
                // A value far longer than any identifier is quoted by its start.
                let quoted = match value.char_indices().nth(40) {
                    Some((cut, _)) => format!("{:?}…", &value[..cut]),
                    None => format!("{value:?}"),
                };
                format!("{quoted} is not a valid {scheme} identifier: {why}")
            }),
            None => Ok(()),
        }
    }

    /// Every `SCHEME:VALUE` the region checks that `value` is under a scheme of `country`: the
    /// parties a UCR of that country naming `value` may be (a CUIT is also a valid CUIL). None
    /// when no scheme of the country has a check or none takes the value.
    pub fn parties_of(&self, country: &str, value: &str) -> Vec<String> {
        self.by_scheme
            .iter()
            .filter(|(scheme, (_, check))| scheme_country(scheme) == Some(country) && check(value).is_ok())
            .map(|(scheme, _)| format!("{scheme}:{value}"))
            .collect()
    }

    /// The `x-identifier` keyword for the schema validator.
    pub fn keyword(self: &Arc<Self>, schema: &Value) -> Result<IdentifierKeyword, String> {
        let (scheme, value) = match schema {
            Value::Bool(true) => ("scheme".to_owned(), "value".to_owned()),
            Value::Object(m) => {
                let member = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("x-identifier needs {k:?}: the member holding it"));
                (member("scheme")?, member("value")?)
            }
            other => return Err(format!("x-identifier is true or {{\"scheme\": ..., \"value\": ...}}, not {other}")),
        };
        Ok(IdentifierKeyword { schemes: self.clone(), scheme, value })
    }
}

/// `"x-identifier"`: the object's value checked by its scheme.
pub struct IdentifierKeyword {
    schemes: Arc<IdentifierSchemes>,
    /// The member holding the scheme, and the one holding the value.
    scheme: String,
    value: String,
}

impl IdentifierKeyword {
    fn verdict(&self, instance: &Value) -> Result<(), String> {
        match (instance.get(&self.scheme).and_then(Value::as_str), instance.get(&self.value).and_then(as_text)) {
            (Some(scheme), Some(value)) => self.schemes.check(scheme, &value),
            _ => Ok(()),
        }
    }
}

/// The country that issues a scheme's identifiers: the two capitals before the `-` of a
/// national scheme's name (`AR-CUIT` is Argentina's). `None` for an international scheme
/// (`GLN`, `EORI`, `LEI`), whose name names no country.
pub fn scheme_country(scheme: &str) -> Option<&str> {
    let (country, rest) = scheme.split_once('-')?;
    (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) && !rest.is_empty()).then_some(country)
}

/// An identifier's value as text: a string, or a number written without quotes (checked as
/// its digits, as the submitting party's identifier is read).
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl<'i> jsonschema::Keyword<'i> for IdentifierKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        self.verdict(instance).map_err(jsonschema::ValidationError::custom)
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.verdict(instance).is_ok()
    }
}

/// What to add to a shape's message when the value is written with separators, as printed.
fn separators_hint(value: &str) -> &'static str {
    if value.contains(['-', '.', '/', ' ']) { ", without dashes, dots, slashes or spaces" } else { "" }
}

fn digits(value: &str, n: usize, name: &str, example: &str) -> Result<Vec<u32>, String> {
    if value.len() != n || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("a {name} is {n} digits{}, for example {example}", separators_hint(value)));
    }
    Ok(value.bytes().map(|b| u32::from(b - b'0')).collect())
}

/// Σ digit × weight.
fn weighted_sum(d: &[u32], weights: &[u32]) -> u32 {
    d.iter().zip(weights).map(|(a, b)| a * b).sum()
}

/// Σ digit × weight, mod 11, as 11 minus the remainder (11 → 0; 10 has no digit).
fn mod11(d: &[u32], weights: &[u32]) -> Option<u32> {
    match 11 - weighted_sum(d, weights) % 11 {
        11 => Some(0),
        10 => None,
        r => Some(r),
    }
}

fn check_digit(expected: Option<u32>, found: u32, name: &str) -> Result<(), String> {
    if expected == Some(found) {
        Ok(())
    } else {
        Err(format!("its check digit does not match the other digits; check the {name} for a typing error"))
    }
}

/// Argentina's CUIT (and CUIL): 11 digits, a type prefix (20, 23, 24, 27, 30, 33, 34), and a
/// mod-11 check digit over weights 5 4 3 2 7 6 5 4 3 2.
pub fn ar_cuit(value: &str) -> Result<(), String> {
    let d = digits(value, 11, "CUIT", "30714255831")?;
    if ![20, 23, 24, 27, 30, 33, 34].contains(&(d[0] * 10 + d[1])) {
        return Err("a CUIT starts with 20, 23, 24 or 27 (persons) or 30, 33 or 34 (companies)".into());
    }
    check_digit(mod11(&d[..10], &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]), d[10], "CUIT")
}

/// Brazil's CNPJ: 14 characters, the first 12 digits or (issued since July 2026) capital
/// letters, the last two digits: two mod-11 check digits over each character's value (its
/// ASCII code minus 48, so a digit is itself and `A` is 17); remainders 0 and 1 give 0.
pub fn br_cnpj(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let shape = b.len() == 14 && b[..12].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) && b[12..].iter().all(u8::is_ascii_digit);
    if !shape {
        return Err(format!(
            "a CNPJ is 14 characters{}: 12 digits or capital letters, then 2 digits, for example 45678912000155 or 12ABC34501DE35",
            separators_hint(value)
        ));
    }
    let d: Vec<u32> = b.iter().map(|c| u32::from(c - b'0')).collect();
    if d.iter().all(|x| *x == d[0]) {
        return Err("a CNPJ of one repeated digit is not issued".into());
    }
    let dv = |n: usize, weights: &[u32]| match weighted_sum(&d[..n], weights) % 11 {
        r if r < 2 => 0,
        r => 11 - r,
    };
    let first = dv(12, &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    let second = dv(13, &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    check_digit(Some(first * 10 + second), d[12] * 10 + d[13], "CNPJ")
}

/// Brazil's CPF: 11 digits, two check digits (weights 10..2, then 11..2; ×10 mod 11 mod 10).
pub fn br_cpf(value: &str) -> Result<(), String> {
    let d = digits(value, 11, "CPF", "52998224725")?;
    if d.iter().all(|x| *x == d[0]) {
        return Err("a CPF of one repeated digit is not issued".into());
    }
    let dv = |n: usize| d[..n].iter().zip((2..=n as u32 + 1).rev()).map(|(a, b)| a * b).sum::<u32>() * 10 % 11 % 10;
    check_digit(Some(dv(9) * 10 + dv(10)), d[9] * 10 + d[10], "CPF")
}

/// Uruguay's RUT: 12 digits: the registration number (01 to 21), a sequence number (not
/// 000000), `001`, and a mod-11 check digit over weights 4 3 2 9 8 7 6 5 4 3 2.
pub fn uy_rut(value: &str) -> Result<(), String> {
    let d = digits(value, 12, "RUT", "213456780011")?;
    if !(1..=21).contains(&(d[0] * 10 + d[1])) {
        return Err("a RUT starts with its registration number, 01 to 21".into());
    }
    if d[2..8].iter().all(|x| *x == 0) {
        return Err("a RUT's digits 3 to 8 are its sequence number, not 000000".into());
    }
    if d[8..11] != [0, 0, 1] {
        return Err("a RUT's digits 9 to 11 are 001, for example 213456780011".into());
    }
    check_digit(mod11(&d[..11], &[4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]), d[11], "RUT")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid numbers (from the examples and public test numbers); each with one digit changed
    /// must fail, as must the same digits written with separators.
    #[test]
    fn each_check_takes_valid_numbers_and_refuses_a_changed_digit_and_separators() {
        let cases: [(CheckFn, &[&str]); 4] = [
            (ar_cuit, &["30714255831", "30698765433", "30712345604", "20111111112", "27312456783"]),
            (br_cnpj, &["45678912000155", "01728394000161", "09345122000194", "60223344000191", "12ABC34501DE35"]),
            (br_cpf, &["52998224725", "11144477735"]),
            (uy_rut, &["213456780011", "161234560019", "112233440011", "218765430016"]),
        ];
        for (check, valid) in cases {
            for v in valid {
                assert_eq!(check(v), Ok(()), "{v}");
                for i in 0..v.len() {
                    let mut changed: Vec<u8> = v.bytes().collect();
                    changed[i] = b'0' + (changed[i] - b'0' + 1) % 10;
                    let changed = String::from_utf8(changed).unwrap();
                    assert!(check(&changed).is_err(), "{changed} (digit {i} of {v} changed) is refused");
                }
            }
        }
        let err = ar_cuit("30-71425583-1").unwrap_err();
        assert!(err.contains("11 digits, without dashes") && err.contains("30714255831"), "{err}");
        assert!(br_cnpj("45.678.912/0001-55").unwrap_err().contains("without dashes, dots, slashes or spaces"));
        assert!(br_cpf("00000000000").unwrap_err().contains("repeated digit"));
        assert!(uy_rut("993456780011").unwrap_err().contains("registration number, 01 to 21"));
        assert!(uy_rut("210000000016").unwrap_err().contains("not 000000"));
        assert!(uy_rut("213456780029").unwrap_err().contains("are 001"));
        // The Receita Federal's example of an alphanumeric CNPJ, written as printed and in lower case.
        assert!(br_cnpj("12.ABC.345/01DE-35").unwrap_err().contains("without dashes"));
        assert!(br_cnpj("12abc34501de35").unwrap_err().contains("digits or capital letters"));
        assert!(br_cnpj("12ABC34501DE53").unwrap_err().contains("check digit"));
        assert!(ar_cuit("30714255832").unwrap_err().contains("check digit"));
    }

    #[test]
    fn schemes_map_to_checks_and_unknown_ones_pass() {
        let config: BTreeMap<String, crate::config::IdentifierSchemeConfig> =
            toml::from_str("[AR-CUIT]\ncheck = \"ar-cuit\"\n[AR-CUIL]\ncheck = \"ar-cuit\"").unwrap();
        let schemes = IdentifierSchemes::new(&config).unwrap();
        assert!(schemes.check("AR-CUIL", "27312456783").is_ok());
        let err = schemes.check("AR-CUIT", "30-71425583-1").unwrap_err();
        assert!(err.starts_with("\"30-71425583-1\" is not a valid AR-CUIT identifier: a CUIT is 11 digits"), "{err}");
        assert!(schemes.check("UY-CI", "anything").is_ok(), "a scheme without a check is taken as it is");
        assert_eq!(schemes.parties_of("AR", "30714255831"), ["AR-CUIL:30714255831", "AR-CUIT:30714255831"]);
        assert!(schemes.parties_of("AR", "30714255832").is_empty(), "a wrong check digit names nobody");
        assert!(schemes.parties_of("BR", "30714255831").is_empty(), "no scheme of BR is configured here");
        let bad: BTreeMap<String, crate::config::IdentifierSchemeConfig> = toml::from_str("[CL-RUT]\ncheck = \"cl-rut\"").unwrap();
        let err = IdentifierSchemes::new(&bad).unwrap_err();
        assert!(err.contains("[identifier_schemes.CL-RUT]") && err.contains("ar-cuit, br-cnpj, br-cpf, uy-rut, did, uri"), "{err}");
    }

    #[test]
    fn parties_named_by_a_did_or_a_uri_are_checked_by_their_syntax() {
        for ok in ["did:web:exporter.example.com", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "did:web:example.com%3A8443:users:alice"] {
            assert!(did(ok).is_ok(), "{ok}");
        }
        assert!(did("web:exporter.example.com").unwrap_err().contains("starts with"));
        assert!(did("did:Web:x").unwrap_err().contains("method"));
        assert!(did("did:web:").unwrap_err().contains("not empty"));
        assert!(did("did:web:a b").unwrap_err().contains("letters, digits"));
        assert!(did("did:web:a%zz").is_err(), "a bad escape");
        for ok in ["https://exporter.example.com/org", "urn:lei:5493001KJTIIGC8Y1R12", "did:web:exporter.example.com"] {
            assert!(uri(ok).is_ok(), "{ok}");
        }
        assert!(uri("exporter.example.com").unwrap_err().contains("absolute URI"));
        assert!(uri("https://a b").unwrap_err().contains("spaces"));
        for not_rfc3986 in ["https:\\\\host", "urn:x:\u{e4}", "https://example.com/a|b", "1http://x"] {
            assert!(uri(not_rfc3986).is_err(), "{not_rfc3986}");
        }
        let config: BTreeMap<String, crate::config::IdentifierSchemeConfig> = toml::from_str("[DID]\ncheck = \"did\"\n[URI]\ncheck = \"uri\"").unwrap();
        let schemes = IdentifierSchemes::new(&config).unwrap();
        assert!(schemes.check("DID", "did:web:exporter.example.com").is_ok());
        assert!(schemes.check("DID", "https://exporter.example.com").unwrap_err().contains("is not a valid DID identifier"));
        assert_eq!(scheme_country("DID"), None, "an international scheme: an NSW acts for such a party by its address");
    }

    #[test]
    fn a_national_scheme_names_its_country() {
        assert_eq!(scheme_country("AR-CUIT"), Some("AR"));
        assert_eq!(scheme_country("UY-CI"), Some("UY"));
        for international in ["GLN", "EORI", "GS1-GLN", "ar-cuit", "AR-", "A-CUIT"] {
            assert_eq!(scheme_country(international), None, "{international}");
        }
    }
}
