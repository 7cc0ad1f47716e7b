//! Countries as standards write them, read as the ISO 3166-1 alpha-2 codes the gateway routes
//! by (issue 29, item 3): the country of a UN/LOCODE (its first two letters), and a country
//! written by its name (`Mexico`, `México`, `Brasil`, `Estados Unidos`) in English, Spanish or
//! Portuguese. The names are the region's and its main trading partners'; a name not listed is
//! kept as written, so the check that compares it says what the document said.

/// The country of a UN/LOCODE (`ARBUE`, `AR BUE`, `arbue`): its first two letters, when the
/// rest is a location code (three letters or digits 2 to 9). `None` for anything else.
pub fn of_locode(code: &str) -> Option<String> {
    let compact: String = code.trim().chars().filter(|c| *c != ' ').collect();
    let bytes = compact.as_bytes();
    let country_ok = bytes.len() == 5 && bytes[..2].iter().all(u8::is_ascii_alphabetic);
    let place_ok = bytes.len() == 5 && bytes[2..].iter().all(|b| b.is_ascii_alphabetic() || (b'2'..=b'9').contains(b));
    (country_ok && place_ok).then(|| compact[..2].to_ascii_uppercase())
}

/// The ISO code of a country written by its name, or by its code in any case (`mx`).
pub fn of_name(name: &str) -> Option<&'static str> {
    let key = folded(name);
    if key.len() == 2 {
        if let Some((_, code)) = NAMES.iter().find(|(_, code)| code.eq_ignore_ascii_case(&key)) {
            return Some(code);
        }
    }
    NAMES.iter().find(|(n, _)| *n == key).map(|(_, code)| *code)
}

/// Lower case, without accents, one space between words, no dots (`Estados Unidos de América`
/// is `estados unidos de america`; `U.S.A.` is `usa`).
fn folded(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            '.' => continue,
            c if c.is_whitespace() || c == '-' => ' ',
            c => c,
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

/// Names (folded: lower case, no accents) and their codes.
const NAMES: &[(&str, &str)] = &[
    ("argentina", "AR"),
    ("republica argentina", "AR"),
    ("bolivia", "BO"),
    ("estado plurinacional de bolivia", "BO"),
    ("brazil", "BR"),
    ("brasil", "BR"),
    ("chile", "CL"),
    ("colombia", "CO"),
    ("costa rica", "CR"),
    ("cuba", "CU"),
    ("dominican republic", "DO"),
    ("republica dominicana", "DO"),
    ("ecuador", "EC"),
    ("el salvador", "SV"),
    ("guatemala", "GT"),
    ("honduras", "HN"),
    ("mexico", "MX"),
    ("estados unidos mexicanos", "MX"),
    ("nicaragua", "NI"),
    ("panama", "PA"),
    ("paraguay", "PY"),
    ("peru", "PE"),
    ("uruguay", "UY"),
    ("republica oriental del uruguay", "UY"),
    ("venezuela", "VE"),
    ("united states", "US"),
    ("united states of america", "US"),
    ("usa", "US"),
    ("estados unidos", "US"),
    ("estados unidos de america", "US"),
    ("canada", "CA"),
    ("spain", "ES"),
    ("espana", "ES"),
    ("espanha", "ES"),
    ("portugal", "PT"),
    ("china", "CN"),
    ("people's republic of china", "CN"),
    ("germany", "DE"),
    ("alemania", "DE"),
    ("alemanha", "DE"),
    ("france", "FR"),
    ("francia", "FR"),
    ("franca", "FR"),
    ("italy", "IT"),
    ("italia", "IT"),
    ("netherlands", "NL"),
    ("the netherlands", "NL"),
    ("paises bajos", "NL"),
    ("holanda", "NL"),
    ("united kingdom", "GB"),
    ("reino unido", "GB"),
    ("japan", "JP"),
    ("japon", "JP"),
    ("japao", "JP"),
    ("south korea", "KR"),
    ("republic of korea", "KR"),
    ("corea del sur", "KR"),
    ("coreia do sul", "KR"),
    ("india", "IN"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locode_gives_its_country_and_anything_else_nothing() {
        assert_eq!(of_locode("ARBUE").as_deref(), Some("AR"));
        assert_eq!(of_locode("br ssz").as_deref(), Some("BR"));
        assert_eq!(of_locode("UYMVD ").as_deref(), Some("UY"));
        assert_eq!(of_locode("NLRT2").as_deref(), Some("NL"), "a place code may hold the digits 2 to 9");
        assert_eq!(of_locode("NLRT1"), None, "but not 1 or 0");
        assert_eq!(of_locode("AR"), None);
        assert_eq!(of_locode("12BUE"), None);
        assert_eq!(of_locode("ARBUEX"), None);
    }

    #[test]
    fn a_country_name_in_english_spanish_or_portuguese_gives_its_code() {
        for (name, code) in [
            ("Mexico", "MX"),
            ("México", "MX"),
            ("  MEXICO ", "MX"),
            ("Brasil", "BR"),
            ("Brazil", "BR"),
            ("Estados Unidos de América", "US"),
            ("U.S.A.", "US"),
            ("República Oriental del Uruguay", "UY"),
            ("uy", "UY"),
            ("Países Bajos", "NL"),
        ] {
            assert_eq!(of_name(name), Some(code), "{name}");
        }
        assert_eq!(of_name("Atlantis"), None);
        assert_eq!(of_name("ZZ"), None, "two letters that are no listed country's code");
    }
}
