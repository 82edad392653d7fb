//! The modules of `host/src` import each other in one direction only: no cycle between two
//! files, and none between two top-level modules (`http`, `calls`, `pbx`, …).
//!
//! The graph is read from the source: every `crate::…`, `super::…` and `self::…` path (with
//! `use` groups such as `crate::{a, b::c}`), and a child module named from its parent
//! (`hub::Hub` in `notify.rs`), resolved to the longest module it names; a visibility such
//! as `pub(crate)` names none. Comments are not
//! read, nor the items under `#[cfg(test)]` (unit tests, whose `super::*` is the file
//! itself). `cargo test -p click2dial-host --test module_graph --
//! --nocapture` prints the graph; `MODULE_GRAPH_SRC=<dir>` checks another tree (main's
//! `host/src` before issue 13 fails: `call_store -> pbx -> call_store`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's path below the crate (`""` is the crate root, `lib.rs`).
type Module = String;

/// Module → the modules it names.
type Graph = BTreeMap<Module, BTreeSet<Module>>;

/// Every `.rs` file under `dir` as (module path, source); `main.rs` is another crate.
fn read_modules(dir: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read host/src")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 name")
                .to_string();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
                continue;
            }
            let Some(stem) = name.strip_suffix(".rs") else {
                continue;
            };
            let mut segments = prefix.to_vec();
            match stem {
                "main" if prefix.is_empty() => continue,
                "lib" if prefix.is_empty() => {}
                "mod" => {}
                other => segments.push(other.to_string()),
            }
            let source = std::fs::read_to_string(&path).expect("read source");
            out.insert(segments.join("::"), source);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &[], &mut out);
    out
}

/// The source without comments and without the items under `#[cfg(test)]` (unit tests,
/// whose `super::*` is the file itself).
fn code(source: &str) -> String {
    let mut out = String::new();
    // Inside a `#[cfg(test)]` item: its brace depth once its body opened.
    let mut skipping: Option<i32> = None;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find(" // ") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        if trimmed.starts_with("#[cfg(test)]") {
            skipping = Some(0);
            continue;
        }
        if let Some(depth) = skipping.as_mut() {
            let opened = line.contains('{');
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            let item_ended = (*depth <= 0 && (opened || line.contains('}')))
                || (*depth == 0 && line.trim_end().ends_with(';'));
            if item_ended {
                skipping = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts at `text[at..]`: `a::b::c`, or with a group, `a::{b, c::{d}}`.
fn paths_at(text: &str, at: usize) -> Vec<Vec<String>> {
    let bytes: Vec<char> = text[at..].chars().collect();
    let mut i = 0;
    parse_path(&bytes, &mut i)
}

fn parse_path(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    loop {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            let mut out = Vec::new();
            loop {
                while *i < s.len() && (s[*i].is_whitespace() || s[*i] == ',') {
                    *i += 1;
                }
                if *i >= s.len() || s[*i] == '}' {
                    *i += 1;
                    break;
                }
                let before = *i;
                for tail in parse_path(s, i) {
                    let mut full = segments.clone();
                    full.extend(tail);
                    out.push(full);
                }
                if *i == before {
                    *i += 1; // `*`, `as`, anything else: skip it
                }
                // Skip `as name` and the like, up to the next item.
                while *i < s.len() && s[*i] != ',' && s[*i] != '}' {
                    *i += 1;
                }
            }
            return out;
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if *i == start {
            break;
        }
        segments.push(s[start..*i].iter().collect());
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            break;
        }
    }
    if segments.is_empty() {
        Vec::new()
    } else {
        vec![segments]
    }
}

/// The module `segments` (already absolute) names: its longest prefix that is a module.
fn resolve(modules: &BTreeSet<Module>, segments: &[String]) -> Module {
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

/// The module graph of `files` (module path → source).
fn graph(files: &BTreeMap<Module, String>) -> Graph {
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, source) in files {
        let here: Vec<String> = if module.is_empty() {
            Vec::new()
        } else {
            module.split("::").map(str::to_string).collect()
        };
        let code = code(source);
        let mut targets = BTreeSet::new();
        let mut at = 0;
        while at < code.len() {
            let rest = &code[at..];
            let boundary = at == 0 || !code[..at].ends_with(|c: char| is_ident(c) || c == ':');
            let start_ident = rest.starts_with(is_ident);
            if !(boundary && start_ident) {
                at += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            }
            for path in paths_at(&code, at) {
                // `pub(crate)`, `pub(super)`: a visibility, not a path to a module.
                if let [only] = path.as_slice() {
                    if matches!(only.as_str(), "crate" | "super" | "self") {
                        continue;
                    }
                }
                let mut base: Vec<String> = here.clone();
                let mut rest: &[String] = &path;
                let absolute = match rest.first().map(String::as_str) {
                    Some("crate") => {
                        base.clear();
                        rest = &rest[1..];
                        true
                    }
                    Some("super") => {
                        while rest.first().map(String::as_str) == Some("super") {
                            base.pop();
                            rest = &rest[1..];
                        }
                        true
                    }
                    Some("self") => {
                        rest = &rest[1..];
                        true
                    }
                    // A child module named from its parent (2018 paths).
                    Some(first) if rest.len() > 1 => {
                        let mut child = here.clone();
                        child.push(first.to_string());
                        modules.contains(&child.join("::"))
                    }
                    _ => false,
                };
                if !absolute {
                    continue;
                }
                let mut full = base;
                full.extend(rest.iter().cloned());
                let target = resolve(&modules, &full);
                if &target != module {
                    targets.insert(target);
                }
            }
            // Past this identifier and its path.
            let len = rest
                .find(|c: char| !(is_ident(c) || c == ':'))
                .unwrap_or(rest.len());
            at += len.max(1);
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The graph with every module folded into its top-level module.
fn top_level(graph: &Graph) -> Graph {
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let mut out = Graph::new();
    for (from, targets) in graph {
        let entry = out.entry(top(from)).or_default();
        for to in targets {
            if top(to) != top(from) {
                entry.insert(top(to));
            }
        }
    }
    out
}

/// One cycle of `graph`, if it has any.
fn find_cycle(graph: &Graph) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        graph: &Graph,
        node: &Module,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(graph, next, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(cycle) = visit(graph, node, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

fn name(m: &str) -> &str {
    if m.is_empty() {
        "crate"
    } else {
        m
    }
}

fn show(graph: &Graph) -> String {
    let mut out = String::new();
    for (from, targets) in graph {
        let targets: Vec<&str> = targets.iter().map(|t| name(t)).collect();
        out.push_str(&format!("{} -> {}\n", name(from), targets.join(", ")));
    }
    out
}

#[test]
fn host_src_has_no_import_cycle() {
    // MODULE_GRAPH_SRC: another tree to check (e.g. an older `host/src`, to see a cycle).
    let src = std::env::var_os("MODULE_GRAPH_SRC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        std::path::PathBuf::from,
    );
    let files = read_modules(&src);
    assert!(files.len() > 10, "host/src read: {:?}", files.keys());
    let graph = graph(&files);
    println!("{}", show(&graph));
    if let Some(cycle) = find_cycle(&graph) {
        let cycle: Vec<&str> = cycle.iter().map(|m| name(m)).collect();
        panic!(
            "import cycle between files: {}\n\n{}",
            cycle.join(" -> "),
            show(&graph)
        );
    }
    let layers = top_level(&graph);
    println!("top level:\n{}", show(&layers));
    if let Some(cycle) = find_cycle(&layers) {
        let cycle: Vec<&str> = cycle.iter().map(|m| name(m)).collect();
        panic!(
            "import cycle between top-level modules: {}\n\n{}",
            cycle.join(" -> "),
            show(&layers)
        );
    }
}

fn files(list: &[(&str, &str)]) -> BTreeMap<Module, String> {
    list.iter()
        .map(|(m, s)| (m.to_string(), s.to_string()))
        .collect()
}

#[test]
fn the_checker_sees_every_kind_of_path() {
    let g = graph(&files(&[
        ("", "pub mod a; pub mod b; pub use a::X;"),
        (
            "a",
            "use crate::{b::{self, Y}, c};\nfn f() { super::d::g(); }",
        ),
        (
            "a::inner",
            "use super::Z; // crate::d in a comment\npub(crate) fn v() {}\npub(super) struct S;",
        ),
        (
            "b",
            "/// [crate::c] is a doc link\nfn f() -> crate::a::inner::W {}",
        ),
        (
            "c",
            "use self::deep::V; fn f() { deep::g() }\npub(crate) fn w() {}",
        ),
        (
            "c::deep",
            "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a;\n}\nfn g() { crate::d::f() }",
        ),
        (
            "d",
            "fn f() { let url = \"redis://x\"; std::mem::drop(crate::c::deep::h()); }",
        ),
    ]));
    let targets = |m: &str| g[m].iter().map(|t| name(t).to_string()).collect::<Vec<_>>();
    assert_eq!(targets(""), ["a"]);
    assert_eq!(targets("a"), ["b", "c", "d"]);
    assert_eq!(targets("a::inner"), ["a"]);
    assert_eq!(targets("b"), ["a::inner"]);
    assert_eq!(targets("c"), ["c::deep"]);
    assert_eq!(
        targets("c::deep"),
        ["d"],
        "after the test module, read again"
    );
    assert_eq!(targets("d"), ["c::deep"]);
    // a -> b -> a::inner -> a
    let cycle = find_cycle(&g).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(
        find_cycle(&top_level(&g)).is_some(),
        "a <-> b at the top too"
    );
}

#[test]
fn no_cycle_no_report() {
    let g = graph(&files(&[
        ("", "pub use http::app;"),
        ("http", "use crate::calls::Calls;"),
        (
            "http::calls",
            "use crate::calls::Calls; use super::error::E;",
        ),
        ("http::error", ""),
        ("calls", "use crate::store::Redis;"),
        ("store", ""),
    ]));
    assert_eq!(find_cycle(&g), None);
    assert_eq!(find_cycle(&top_level(&g)), None);
}
