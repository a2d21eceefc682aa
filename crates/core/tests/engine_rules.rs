//! The rules the engine's shape must keep (ARCHITECTURE.md): it depends on no
//! command-line or terminal crate, nothing in it prints, prompts or exits, and
//! neither the engine nor the CLI has a cycle between its modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text without `//` comments (doc comments may name what is forbidden).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_engine_depends_on_no_command_line_or_terminal_crate() {
    let manifest = std::fs::read_to_string(root().join("crates/core/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    for forbidden in [
        "clap",
        "clap_complete",
        "indicatif",
        "rpassword",
        "dialoguer",
        "inquire",
        "reedline",
        "rustyline",
        "crossterm",
        "console",
        "termion",
        "ratatui",
        "anyhow",
        "attune-relay",
    ] {
        let named = deps
            .lines()
            .any(|l| l.split(['=', ' ']).next() == Some(forbidden));
        assert!(!named, "crates/core depends on {forbidden}");
    }
}

#[test]
fn nothing_in_the_engine_prints_prompts_or_exits() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/core/src"), &mut files);
    assert!(files.len() > 10, "engine sources not found");
    let forbidden = [
        "println!",
        "print!",
        "eprintln!",
        "eprint!",
        "dbg!",
        "process::exit",
        "io::stdin",
        "io::stdout",
        "io::stderr",
        "is_terminal",
    ];
    let mut found = Vec::new();
    for f in &files {
        let code = code_of(f);
        for word in forbidden {
            if code.contains(word) {
                found.push(format!("{}: {word}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine must not do I/O with a person: {found:#?}"
    );
}

/// The modules of one crate (top-level, and the children of a directory module)
/// and which siblings each refers to through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|c| c != "mod")
            .collect();
        let Some(top) = parts.first().cloned() else {
            continue;
        };
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_of(f);
        let uses = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                uses.insert(name);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(c) = visit(next, graph, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_cycles_in_the_engine_or_the_cli() {
    for src in ["crates/core/src", "client/src"] {
        let graph = module_graph(&root().join(src));
        assert!(graph.len() > 5, "{src}: modules not found");
        assert_eq!(
            find_cycle(&graph),
            None,
            "{src}: modules refer to each other in a cycle"
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert!(find_cycle(&g).is_some());
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
