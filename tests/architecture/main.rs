//! The tree's rules as tests (docs/ARCHITECTURE.md): `functions/` holds exactly the Lambdas and
//! `services/` the long-running processes, the library's layers depend inward only, no handler
//! imports another, and no crate's modules import each other in a circle. Read from the sources, so a new arrow that breaks a rule fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// The module path of a source file of a library crate (`lib.rs` is the root, `""`); binary roots
/// and `bin/` targets are other crates and are skipped.
fn module_path(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    if parts.first().is_some_and(|p| p == "bin") || (parts.is_empty() && last == "main.rs") {
        return None;
    }
    match last.as_str() {
        "lib.rs" if parts.is_empty() => {}
        "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    Some(parts.join("::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source without `//` comments (doc comments name modules in prose, which is not an import) and
/// without its unit tests (from the first `#[cfg(test)]` on: test modules close a file here), which
/// may reach across layers to the fakes or drive two handlers together.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts at `crate`, `super` or `self`, with `use x::{a, b::c}` groups expanded.
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let anchor = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|a| starts_word && bytes[i..].starts_with(a.as_bytes()));
        let Some(anchor) = anchor else {
            i += 1;
            continue;
        };
        let word = anchor.len() - 2;
        let (consumed, found) = parse_path(&code[i + word..], vec![anchor[..word].into()]);
        paths.extend(found);
        i += word + consumed.max(2);
    }
    paths
}

/// Parses `a::b::{c, d::e}` after `prefix`; returns the bytes consumed and the full paths.
fn parse_path(text: &str, prefix: Vec<String>) -> (usize, Vec<Vec<String>>) {
    let mut segments = prefix;
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(after) = rest.strip_prefix("::") {
            at += 2;
            if after.starts_with('{') {
                let mut depth = 0;
                let mut end = 0;
                for (k, c) in after.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let inner = &after[1..end];
                let mut found = Vec::new();
                let mut depth = 0;
                let mut start = 0;
                for (k, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            let item = inner[start..k].trim();
                            if !item.is_empty() {
                                let item = format!("::{item}");
                                found.extend(parse_path(&item, segments.clone()).1);
                            }
                            start = k + 1;
                        }
                        _ => {}
                    }
                }
                return (at + end + 1, found);
            }
            let word: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if word.is_empty() {
                return (at, vec![segments]);
            }
            at += word.len();
            segments.push(word);
        } else {
            return (at, vec![segments]);
        }
    }
}

/// A crate's modules and the module each one imports from (a child's use of an ancestor's items
/// is not counted: a module is part of its parent).
struct ModuleGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn is_ancestor(ancestor: &str, of: &str) -> bool {
    ancestor.is_empty() || of.starts_with(&format!("{ancestor}::"))
}

impl ModuleGraph {
    /// `extra` names items of the crate root that stand for a layer (the re-exported domain).
    fn of_crate(src: &Path, extra: &[&str]) -> Self {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let modules: BTreeMap<String, PathBuf> = files
            .iter()
            .filter(|f| f.file_name().is_none_or(|n| n != "tests.rs"))
            .filter_map(|f| module_path(src, f).map(|m| (m, f.clone())))
            .collect();
        let known: BTreeSet<String> = modules
            .keys()
            .cloned()
            .chain(extra.iter().map(|e| e.to_string()))
            .collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, file) in &modules {
            let code = code_of(&std::fs::read_to_string(file).expect("readable source"));
            let here: Vec<String> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").map(str::to_owned).collect()
            };
            let targets = edges.entry(module.clone()).or_default();
            for path in referenced_paths(&code) {
                let mut absolute: Vec<String> = match path[0].as_str() {
                    "crate" => Vec::new(),
                    "self" => here.clone(),
                    _ => here[..here.len().saturating_sub(1)].to_vec(),
                };
                let mut rest = &path[1..];
                while rest.first().is_some_and(|s| s == "super") {
                    absolute.pop();
                    rest = &rest[1..];
                }
                absolute.extend(rest.iter().cloned());
                let target = (0..=absolute.len())
                    .rev()
                    .map(|n| absolute[..n].join("::"))
                    .find(|candidate| known.contains(candidate))
                    .unwrap_or_default();
                if target != *module && !is_ancestor(&target, module) {
                    targets.insert(target);
                }
            }
        }
        Self { edges }
    }

    /// Some import circle, if there is one.
    fn find_cycle(&self) -> Option<Vec<String>> {
        fn visit(
            graph: &ModuleGraph,
            node: &str,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = stack.iter().position(|n| n == node) {
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            stack.push(node.to_owned());
            for next in graph.edges.get(node).into_iter().flatten() {
                if let Some(cycle) = visit(graph, next, stack, done) {
                    return Some(cycle);
                }
            }
            stack.pop();
            done.insert(node.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        self.edges
            .keys()
            .find_map(|node| visit(self, node, &mut Vec::new(), &mut done))
    }
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

#[test]
fn functions_holds_exactly_the_lambdas() {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alerter",
            "api",
            "docs",
            "live-connect",
            "migrator",
            "placer",
            "sweeper"
        ],
        "functions/ is for Lambda functions only; local tools go in tools/"
    );
    for name in &names {
        let manifest =
            std::fs::read_to_string(repo_root().join("functions").join(name).join("Cargo.toml"))
                .expect("manifest");
        assert!(
            !manifest.contains("tools/") && !manifest.contains("../tools"),
            "the {name} Lambda links a local tool"
        );
    }
}

/// `services/` holds the long-running processes that AWS runs as containers (a socket client
/// is no Lambda): like a function, each `main` only wires, and none links a local tool.
#[test]
fn services_holds_the_long_running_processes() {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("services"))
        .expect("services/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ingester", "live-fanout"],
        "services/ is for long-running processes deployed to AWS; local tools go in tools/"
    );
    for name in &names {
        let manifest =
            std::fs::read_to_string(repo_root().join("services").join(name).join("Cargo.toml"))
                .expect("manifest");
        assert!(
            !manifest.contains("tools/") && !manifest.contains("../tools"),
            "the {name} service links a local tool"
        );
    }
}

#[test]
fn the_domain_crate_has_no_aws_http_or_sql_dependencies() {
    let manifest = std::fs::read_to_string(repo_root().join("shared/domain/Cargo.toml"))
        .expect("domain manifest");
    for forbidden in [
        "aws", "lambda", "axum", "http", "hyper", "reqwest", "postgres", "sqlx", "tokio",
    ] {
        let dependency_lines = manifest
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='));
        for line in dependency_lines {
            let name = line.split('=').next().unwrap_or("").trim();
            assert!(
                !name.contains(forbidden),
                "the domain crate depends on `{name}`"
            );
        }
    }
}

#[test]
fn library_layers_depend_inward_only() {
    let graph = ModuleGraph::of_crate(&repo_root().join("shared/src"), &["domain"]);
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("auth", &["domain"][..]),
        ("telemetry", &["domain"][..]),
        ("ports", &["domain", "auth"][..]),
        ("usecases", &["ports", "domain", "telemetry"][..]),
        (
            "handlers",
            &["usecases", "ports", "domain", "auth", "telemetry"][..],
        ),
        ("adapters", &["ports", "domain", "auth", "telemetry"][..]),
        ("fakes", &["ports", "domain", "auth"][..]),
        (
            "config",
            &[
                "adapters",
                "handlers",
                "usecases",
                "ports",
                "domain",
                "auth",
                "telemetry",
            ][..],
        ),
    ]);
    let mut violations = Vec::new();
    for (from, targets) in &graph.edges {
        if from.is_empty() {
            continue;
        }
        let Some(may_use) = allowed.get(layer(from)) else {
            violations.push(format!(
                "{from}: a top-level module outside the known layers"
            ));
            continue;
        };
        for to in targets {
            if layer(to) == layer(from) {
                continue;
            }
            if !may_use.contains(&layer(to)) {
                violations.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the dependency rule (docs/ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_handler_imports_another() {
    let graph = ModuleGraph::of_crate(&repo_root().join("shared/src"), &["domain"]);
    let handler = |module: &str| -> Option<String> {
        let mut parts = module.split("::");
        (parts.next() == Some("handlers"))
            .then(|| parts.next().map(str::to_owned))
            .flatten()
    };
    let mut violations = Vec::new();
    for (from, targets) in &graph.edges {
        let Some(from_handler) = handler(from) else {
            continue;
        };
        for to in targets {
            match handler(to) {
                Some(to_handler) if to_handler != from_handler && to_handler != "sqs_batch" => {
                    violations.push(format!("{from} -> {to}"));
                }
                _ => {}
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a handler imports another (shared steps go in usecases/ or handlers/sqs_batch):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_crate_has_an_import_circle() {
    let crates: [(&str, &[&str]); 7] = [
        ("shared/src", &["domain"]),
        ("services/ingester/src", &[]),
        ("shared/domain/src", &[]),
        ("tools/sqs-local/src", &[]),
        ("tools/exchange-sim/src", &[]),
        ("tools/local-runner/src", &[]),
        ("tools/admin/src", &[]),
    ];
    for (src, extra) in crates {
        let graph = ModuleGraph::of_crate(&repo_root().join(src), extra);
        if let Some(cycle) = graph.find_cycle() {
            panic!(
                "{src}: modules import each other in a circle: {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_reader_of_imports_sees_groups_and_relative_paths() {
    let code = "use crate::{ports::{A, B}, domain::Order};\nuse super::sqs_batch::x;\nlet y = crate::telemetry::metrics::f();";
    let paths: Vec<String> = referenced_paths(code)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "crate::ports::A",
            "crate::ports::B",
            "crate::domain::Order",
            "super::sqs_batch::x",
            "crate::telemetry::metrics::f",
        ]
    );
}

/// RDS Proxy pins a client to one database connection for good when the session carries state,
/// and PgBouncer in transaction mode breaks on it. The functions' SQL goes through
/// `adapters/postgres/statements` (unnamed statements); nowhere else in the library may talk to
/// Postgres, prepare a statement or keep state on the session. (Migrations run refinery over a
/// connection of their own and are exempt.)
#[test]
fn the_functions_keep_no_session_state_on_the_database() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    for dir in ["functions", "services"] {
        for function in std::fs::read_dir(root.join(dir)).expect("functions/ and services/") {
            rust_files(&function.expect("entry").path().join("src"), &mut files);
        }
    }
    let exempt = ["statements.rs", "migrate.rs"];
    let forbidden = [
        ".prepare(",
        "prepare_cached",
        "prepare_typed",
        ".query(",
        ".query_one(",
        ".query_opt(",
        ".query_raw(",
        ".execute(",
        ".transaction(",
        "SET LOCAL",
        "SET SESSION",
        "set_config(",
        "pg_advisory",
        "LISTEN ",
        "TEMPORARY TABLE",
        "TEMP TABLE",
    ];
    let mut found = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_postgres_adapter = file.to_string_lossy().contains("adapters/postgres/");
        if exempt.contains(&name) && in_postgres_adapter {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        // Without comments and test modules (which may use their own direct connections).
        let code = code_of(&text);
        for pattern in forbidden {
            // `.execute(` is also the SQS/SNS builders' method; only database clients count.
            if pattern == ".execute(" && !code.contains("tokio_postgres") && !in_postgres_adapter {
                continue;
            }
            if code.contains(pattern) {
                found.push(format!("{}: {pattern}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "session state or a named statement outside adapters/postgres/statements.rs: {found:#?}"
    );
}
