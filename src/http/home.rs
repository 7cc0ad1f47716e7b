//! The landing page at `/`, and the guides at `/docs/{guide}`: what a newcomer who opens the
//! gateway's address in a browser finds. The page links the dashboard, the API descriptions
//! (`/openapi.json`, `/asyncapi.json`), the receipt keys, health and readiness, and every guide;
//! the guides are the repository's Markdown files built into the binary, served as text, so
//! they are the ones of the running version and need nothing beside the binary.

use actix_web::{web, HttpResponse};

use super::policy::Public;
use crate::problems::{ApiError, Code};

/// The guides served at `/docs/{guide}`, by file name, with what each is for.
pub const GUIDES: &[(&str, &str, &str)] = &[
    ("README.md", "Start here: the two commands and the walkthrough", include_str!("../../README.md")),
    ("traders.md", "Traders and customs brokers", include_str!("../../docs/traders.md")),
    ("agencies.md", "Agencies", include_str!("../../docs/agencies.md")),
    ("it-teams.md", "IT teams integrating a national single window", include_str!("../../docs/it-teams.md")),
    ("operators.md", "Operators", include_str!("../../docs/operators.md")),
    ("release-times.md", "Release times, for the trade facilitation committee", include_str!("../../docs/release-times.md")),
    ("risk.md", "Risk profiling and selection", include_str!("../../docs/risk.md")),
    ("tfa.md", "The TFA monitor, for the trade facilitation committee", include_str!("../../docs/tfa.md")),
    ("api.md", "Reference: the HTTP API", include_str!("../../docs/api.md")),
    ("configuration.md", "Reference: configuration", include_str!("../../docs/configuration.md")),
    ("errors.md", "Reference: errors", include_str!("../../docs/errors.md")),
    ("guarantees.md", "Reference: guarantees", include_str!("../../docs/guarantees.md")),
    ("security.md", "Reference: security", include_str!("../../docs/security.md")),
    ("code.md", "Reference: map of the code", include_str!("../../docs/code.md")),
];

/// The places the landing page links besides the guides, with what each is.
const LINKS: &[(&str, &str)] = &[
    ("/dashboard", "The release-time dashboard (public figures; add <code>#token=...</code> for your own)"),
    ("/dashboard/tfa", "The TFA monitor, by article and country (operators: add <code>#token=...</code>)"),
    ("/openapi.json", "The HTTP API, as OpenAPI 3.1: generate a client from it"),
    ("/asyncapi.json", "The Kafka side, as AsyncAPI 3.0: every agency's topics and records"),
    ("/.well-known/jwks.json", "The keys receipts are signed with (JWKS)"),
    ("/v1/schemas", "The document types and their schemas"),
    ("/healthz", "Health"),
    ("/readyz", "Readiness: the store and the broker"),
];

/// `GET /`: the landing page.
pub async fn page(_: Public) -> HttpResponse {
    let mut html = String::from(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ventanilla</title>\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<link rel=\"stylesheet\" href=\"/dashboard/style.css\"></head>\n<body><main>\n",
        "<h1>Ventanilla ",
        env!("CARGO_PKG_VERSION"),
        "</h1>\n<p>A regional single-window gateway for trade documents: traders submit over HTTPS, ",
        "agencies receive over Kafka (or HTTP) and answer, and every consignment is followed to release.</p>\n<h2>Here</h2>\n<ul>\n"
    ));
    for (href, what) in LINKS {
        html.push_str(&format!("<li><a href=\"{href}\"><code>{href}</code></a>: {what}</li>\n"));
    }
    html.push_str("</ul>\n<h2>Guides</h2>\n<ul>\n");
    for (name, what, _) in GUIDES {
        html.push_str(&format!("<li><a href=\"/docs/{name}\">{what}</a></li>\n"));
    }
    html.push_str(concat!(
        "</ul>\n<h2>First request</h2>\n<p>Submit a declaration as the demo trader (demo tokens work on a loopback ",
        "address only), from the repository's root:</p>\n<pre>curl -s -X POST http://127.0.0.1:8080/v1/documents \\\n",
        "  -H 'Authorization: Bearer demo-trader' -H 'Content-Type: application/json' \\\n",
        "  --data-binary @examples/customsDeclaration/valid/export-beef-road-AR-BR.json</pre>\n",
        "<p>Every error is an RFC 9457 problem document with a stable <code>code</code> ",
        "(<a href=\"/docs/errors.md\">errors</a>).</p>\n</main></body></html>\n"
    ));
    HttpResponse::Ok().content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-cache")).body(html)
}

/// `GET /docs/{guide}`: one guide, as the Markdown it is written in.
pub async fn guide(_: Public, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let (_, _, text) = GUIDES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such guide; the landing page, GET /, lists them"))?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").insert_header(("Cache-Control", "no-cache")).body(*text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guide_in_the_repository_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".md"))
            .collect();
        files.push("README.md".into());
        files.sort();
        let mut served: Vec<String> = GUIDES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        served.sort();
        assert_eq!(files, served, "a guide added to docs/ is served at /docs/ and linked from /");
    }

    /// Issue 31: docs/agencies.md used `$BROKER`, which only the README set, so its blocks
    /// failed pasted into a fresh terminal. Every shell variable in capitals that a guide's `sh`
    /// blocks read is set earlier in the same guide.
    #[test]
    fn every_variable_a_guides_commands_read_is_set_in_that_guide() {
        let mut unset = Vec::new();
        for (name, _, text) in GUIDES {
            let mut set = std::collections::BTreeSet::new();
            for block in text.split("```sh\n").skip(1).filter_map(|b| b.split("```").next()) {
                let bytes = block.as_bytes();
                let word = |from: usize| {
                    let end = bytes[from..].iter().position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')).map_or(bytes.len(), |n| from + n);
                    &block[from..end]
                };
                // Assignments (at a line's or a command's start) and uses, in the order written.
                let assignments = block.match_indices('=').filter_map(|(i, _)| {
                    let start = block[..i].rfind(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).map_or(0, |n| n + 1);
                    let at_start = block[..start].chars().last().is_none_or(|c| c.is_whitespace() || c == ';' || c == '(');
                    (start < i && at_start).then(|| (start, true, &block[start..i]))
                });
                let uses = block.match_indices('$').map(|(i, _)| (i, false, word(if bytes.get(i + 1) == Some(&b'{') { i + 2 } else { i + 1 })));
                let mut events: Vec<(usize, bool, &str)> = assignments.chain(uses).collect();
                events.sort();
                for (_, assigns, variable) in events {
                    if assigns {
                        set.insert(variable.to_owned());
                    } else if !variable.is_empty() && !set.contains(variable) && !["HOME", "PATH", "PWD"].contains(&variable) {
                        unset.push(format!("{name}: ${variable}"));
                    }
                }
            }
        }
        assert!(unset.is_empty(), "used but not set earlier in the guide: {unset:?}");
    }
}
