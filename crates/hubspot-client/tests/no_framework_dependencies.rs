//! Using the client must not pull a service framework into the user's build: no web server,
//! AMQP client, CLI parser or the `platform` crate that bundles them (the budget takes a plain
//! diesel-async pool instead). Checked on the manifest and, transitively, on the workspace's
//! Cargo.lock (normal dependencies only; dev-dependencies are test tooling), i.e. what
//! `cargo tree -p hubspot-client -e normal` lists.

use std::collections::{BTreeMap, BTreeSet};

/// Crates that belong to services, not to an API client.
const FORBIDDEN: &[&str] = &[
    "platform",
    "actix-web",
    "actix-http",
    "actix-rt",
    "actix-server",
    "lapin",
    "amq-protocol",
    "clap",
];

/// The names of the crates a build of this crate links: `[dependencies]`,
/// `[target.'cfg(..)'.dependencies]` and `[build-dependencies]`, in either the inline
/// (`foo = ..`) or the table (`[dependencies.foo]`) form. Dev-dependencies are test
/// tooling and are left out.
fn manifest_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            let (section, table_name) = match header.rsplit_once("dependencies.") {
                Some((before, name)) => (format!("{before}dependencies"), Some(name)),
                None => (header.to_owned(), None),
            };
            let is_deps =
                section.ends_with("dependencies") && !section.ends_with("dev-dependencies");
            if let (true, Some(name)) = (is_deps, table_name) {
                names.push(name.trim_matches('"').to_owned());
                in_deps = false;
            } else {
                in_deps = is_deps;
            }
            continue;
        }
        // `foo.workspace = true` or `foo = "1"`.
        if in_deps
            && !line.starts_with('#')
            && let Some((key, _)) = line.split_once('=')
        {
            let name = key.trim().split('.').next().unwrap_or_default();
            names.push(name.trim_matches('"').to_owned());
        }
    }
    names
}

/// Cargo.lock as name -> every version's dependency list (entries are `name` or
/// `name version`).
fn lock_graph(lock: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut graph: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in package.lines().map(str::trim) {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line == "]" {
                in_deps = false;
            } else if in_deps {
                deps.push(line.trim_end_matches(',').trim_matches('"').to_owned());
            }
        }
        if let Some(name) = name {
            graph.entry(name).or_default().push(deps);
        }
    }
    graph
}

/// Every crate reachable from this crate's normal dependencies through Cargo.lock.
fn reachable() -> BTreeSet<String> {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    let lock = match std::fs::read_to_string(lock_path) {
        Ok(l) => l,
        Err(e) => panic!("Cargo.lock must be readable at {lock_path}: {e}"),
    };
    let graph = lock_graph(&lock);
    assert!(graph.contains_key("reqwest"), "parser sanity");
    let mut seen = BTreeSet::new();
    let mut todo = manifest_dependencies(include_str!("../Cargo.toml"));
    while let Some(dep) = todo.pop() {
        // A lock entry may carry a version to disambiguate; any version is followed.
        let name = dep.split(' ').next().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            continue;
        }
        for deps in graph.get(&name).into_iter().flatten() {
            todo.extend(deps.iter().cloned());
        }
    }
    seen
}

#[test]
fn the_manifest_names_no_service_framework_crate() {
    let deps = manifest_dependencies(include_str!("../Cargo.toml"));
    assert!(
        deps.contains(&"reqwest".to_owned()) && deps.contains(&"diesel-async".to_owned()),
        "parser sanity: {deps:?}"
    );
    let bad: Vec<&String> = deps
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(bad.is_empty(), "service crates in [dependencies]: {bad:?}");
}

#[test]
fn no_service_framework_crate_is_reachable_through_normal_dependencies() {
    let seen = reachable();
    assert!(seen.contains("tokio"), "parser sanity: {seen:?}");
    let bad: Vec<&String> = seen
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "service crates reachable from hubspot-client: {bad:?} (all: {seen:?})"
    );
}
