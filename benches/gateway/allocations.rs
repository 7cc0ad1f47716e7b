//! `--allocations N`: the release gateway under heaptrack, allocations and bytes per document,
//! by part and by the gateway's own function.

use super::*;

/// heaptrack's totals of one run: calls to allocation functions, and bytes allocated (from its
/// size histogram).
struct HeapTotals {
    calls: u64,
    bytes: u64,
}

fn heap_totals(file: &Path, histogram: &Path) -> HeapTotals {
    let out = Command::new("heaptrack_print").arg("-f").arg(file).args(["-a", "0", "-p", "0", "-T", "0"]).arg("-H").arg(histogram).output().expect("heaptrack_print runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let calls = text
        .lines()
        .find_map(|l| l.strip_prefix("calls to allocation functions: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("heaptrack_print gave no total of calls:\n{text}"));
    // Each line of the histogram: a size in bytes and how many allocations of that size.
    let bytes = std::fs::read_to_string(histogram)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(f.next()?.parse::<u64>().ok()? * f.next()?.parse::<u64>().ok()?)
        })
        .sum();
    HeapTotals { calls, bytes }
}

/// The allocations one document costs (`--allocations N`, item 3 of issue 27): the release
/// gateway on SQLite and Apache Kafka, run under heaptrack (every call to `malloc`, `calloc`,
/// `realloc` and the aligned ones, librdkafka's and SQLite's included) twice, with N/5 and N
/// single documents each drained to the broker; per document, the difference of the two runs'
/// totals over the difference of their documents, so the start, the stop and the idle polling
/// cancel out. Then the call sites that made the most of those allocations (heaptrack's diff of
/// the two runs). heaptrack slows every allocation: the figures are counts, not speeds.
pub(super) async fn allocations(n: usize, o: &Options, docs: Arc<Vec<Doc>>) {
    println!("\n## allocations per document (heaptrack)");
    if Command::new("heaptrack").arg("--version").stdout(Stdio::null()).status().is_err() {
        println!("skipped: heaptrack is not installed (apt-get install heaptrack)");
        return;
    }
    let Some(kafka) = Kafka::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("VENTANILLA_BENCH_KEEP").is_some() {
        println!("heaptrack's files are kept in {}", dir.path().display());
    }
    let mut runs = Vec::new();
    for (k, count) in [n / 5, n].into_iter().enumerate() {
        let out = dir.path().join(format!("run{k}"));
        *WRAPPER.lock().unwrap() = Some(vec!["heaptrack".into(), "-o".into(), out.display().to_string()]);
        let gateway = Gateway::start(Some(&kafka.address), &format!("alloc{k}{}.", std::process::id()), None).await;
        let bodies: Bodies = {
            let docs = docs.clone();
            Arc::new(move |i| body(&docs, &format!("A{k}"), i))
        };
        let ok = submit_exactly(&gateway.address, bodies, count, o.concurrency.min(16)).await;
        gateway.drain(&reqwest::Client::new()).await;
        gateway.stop();
        *WRAPPER.lock().unwrap() = None;
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("run{k}"))))
            .expect("heaptrack wrote its file");
        let totals = heap_totals(&file, &dir.path().join(format!("histogram{k}")));
        println!("run with {ok} documents: {} calls to allocation functions, {:.1} MB allocated", totals.calls, totals.bytes as f64 / 1e6);
        runs.push((ok, totals, file));
    }
    let ((n1, a, small), (n2, b, large)) = (&runs[0], &runs[1]);
    let docs_between = (n2 - n1).max(1) as f64;
    let mean_body = docs.iter().map(|d| d.before.len() + d.ucr.len() + d.after.len() + 4).sum::<usize>() as f64 / docs.len() as f64;
    let bytes = (b.bytes as f64 - a.bytes as f64) / docs_between;
    println!(
        "per document: **{:.0} allocations**, {:.0} KB allocated ({:.1} times the mean body of {:.1} KB)",
        (b.calls as f64 - a.calls as f64) / docs_between,
        bytes / 1e3,
        bytes / mean_body,
        mean_body / 1e3
    );
    // heaptrack's allocation stacks of the difference between the runs, demangled.
    let stacks = dir.path().join("stacks");
    let out = Command::new("heaptrack_print").arg("-f").arg(large).arg("-d").arg(small).args(["-a", "0", "-p", "0", "-T", "0", "--flamegraph-cost-type", "allocations", "-F"]).arg(&stacks).output().expect("heaptrack_print runs");
    assert!(out.status.success(), "heaptrack_print -F failed: {}", String::from_utf8_lossy(&out.stderr));
    let demangled = Command::new("c++filt").stdin(std::fs::File::open(&stacks).unwrap()).output().map(|o| o.stdout).unwrap_or_default();
    let (by_part, by_function) = allocation_sites(&String::from_utf8_lossy(&demangled));
    println!("\nby part (the innermost library frame of each allocation's stack):");
    for (part, count) in by_part.iter().take(10) {
        println!("- {part}: {:.0} per document", *count as f64 / docs_between);
    }
    println!("\nby the gateway's function nearest each allocation (the 15 that allocate most):");
    for (function, count) in by_function.iter().take(15) {
        println!("- {:.1} per document: {function}", *count as f64 / docs_between);
    }
    if std::env::var_os("VENTANILLA_BENCH_KEEP").is_some() {
        let _ = dir.keep();
    }
}

/// A stack frame's name without Rust's legacy escapes and hash.
fn frame_name(frame: &str) -> String {
    let mut f = frame.replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("$RF$", "&").replace("$C$", ",").replace("$u7b$", "{").replace("$u7d$", "}").replace("..", "::");
    while let Some(at) = f.find("::h").filter(|at| f[at + 3..].chars().take(16).filter(char::is_ascii_hexdigit).count() == 16) {
        f.replace_range(at..at + 19, "");
    }
    // v0 names carry their crate's disambiguator: `alloc[fdfd2bd8633a6659]::...`.
    let mut clean = String::with_capacity(f.len());
    let mut skip = false;
    for c in f.chars() {
        match c {
            '[' => skip = true,
            ']' if skip => skip = false,
            _ if !skip => clean.push(c),
            _ => {}
        }
    }
    clean.chars().take(150).collect()
}

/// Allocations of flame-graph stacks (`frame;frame;...;frame COUNT`, the root first), counted
/// by the part of the program that made them (the innermost frame of a known library, or the
/// gateway itself) and by the gateway's own function nearest the allocation; each list the
/// largest first.
fn allocation_sites(stacks: &str) -> (Vec<(String, u64)>, Vec<(String, u64)>) {
    const PARTS: [(&str, &str); 12] = [
        ("sqlite3", "SQLite"),
        ("rd_kafka", "librdkafka"),
        ("LZ4", "librdkafka (LZ4)"),
        ("jsonschema", "jsonschema (validation)"),
        ("serde_json::ser", "serde_json (writing)"),
        ("serde_json", "serde_json (parsing, Value)"),
        ("referencing", "jsonschema (validation)"),
        ("ed25519", "receipt signing"),
        ("actix_http", "actix-web (HTTP)"),
        ("actix_web", "actix-web (HTTP)"),
        ("rusqlite", "SQLite (rusqlite)"),
        ("tracing", "tracing (logs)"),
    ];
    let mut parts: HashMap<String, u64> = HashMap::new();
    let mut functions: HashMap<String, u64> = HashMap::new();
    for line in stacks.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let Ok(count) = count.parse::<u64>() else { continue };
        let frames: Vec<&str> = stack.split(';').collect();
        let part = frames
            .iter()
            .rev()
            .find_map(|f| PARTS.iter().find(|(needle, _)| f.contains(needle)).map(|(_, part)| *part).or_else(|| f.contains("ventanilla").then_some("the gateway's own code")))
            .unwrap_or("other (std, tokio, libc)");
        *parts.entry(part.to_owned()).or_default() += count;
        if let Some(f) = frames.iter().rev().find(|f| f.contains("ventanilla::") || f.contains("ventanilla<")) {
            *functions.entry(frame_name(f)).or_default() += count;
        }
    }
    let sorted = |m: HashMap<String, u64>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1));
        v
    };
    (sorted(parts), sorted(functions))
}
