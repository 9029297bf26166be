//! The house rules a restructure keeps, checked over the source tree (no build of it needed):
//! no import cycle between modules, in the function or the stand-in; error codes the function
//! acts on are named only in `src/error/`; no file in `src/` passes 600 lines before its tests;
//! every file of `src/` and `standin/src/` has its row in the layout (`docs/development.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Files that are test modules as a whole (`#[cfg(test)] mod model;`).
const TEST_ONLY: [&str; 1] = ["protocol/model.rs"];

fn test_only(rel: &Path) -> bool {
    TEST_ONLY.iter().any(|t| rel == Path::new(t))
}

/// The tree checked: this one, or another checkout (`CTB_LAYOUT_ROOT`, to show what an older
/// commit breaks without building it).
fn root() -> PathBuf {
    std::env::var_os("CTB_LAYOUT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Every `.rs` file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The file's text before its `#[cfg(test)]` module (a test module may use anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A file's module path (`handler::decide`); None for binaries.
fn module_of(rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// The modules each module uses (`crate::x::y` resolved to the longest module it names, and
/// `super::x` where `x` is a module), a module's own ancestors left out.
fn imports(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<String, PathBuf> = files(dir)
        .into_iter()
        .filter_map(|rel| module_of(&rel).map(|m| (m, dir.join(&rel))))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, path) in &modules {
        let text = code(path);
        let mut used = BTreeSet::new();
        let mut named = |path: Vec<&str>| {
            for len in (1..=path.len()).rev() {
                let candidate = path[..len].join("::");
                if modules.contains_key(&candidate) {
                    let ancestor = module.starts_with(&format!("{candidate}::"));
                    if candidate != *module && !ancestor && !candidate.is_empty() {
                        used.insert(candidate);
                    }
                    return;
                }
            }
        };
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            named(path);
        }
        let parent: Vec<&str> = module.split("::").collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for (i, _) in text.match_indices("super::") {
            let rest = &text[i + "super::".len()..];
            let name = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default();
            let mut path = parent.to_vec();
            path.push(name);
            if modules.contains_key(&path.join("::")) {
                named(path);
            }
        }
        graph.insert(module.clone(), used);
    }
    graph
}

/// The groups of modules that reach each other (Tarjan's strongly connected components).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in &w.graph[v] {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(top) = w.stack.pop() {
                group.push(top.to_string());
                if top == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.found.push(group);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    for dir in ["src", "standin/src"] {
        let graph = imports(&root().join(dir));
        assert!(graph.len() > 10, "{dir}: the modules were not found");
        assert_eq!(
            cycles(&graph),
            Vec::<Vec<String>>::new(),
            "{dir}: import cycles"
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}

/// The codes `src/error/codes.rs` lists (this tree's, whichever tree is checked): the text
/// between quotes in its `CODES` rows.
fn listed_codes() -> BTreeSet<String> {
    let text = code(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/error/codes.rs"));
    let list = &text[text.find("const CODES").expect("the list of codes")..];
    let list = &list[..list.find("];").unwrap()];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn error_codes_are_named_only_in_the_error_module() {
    let codes = listed_codes();
    assert!(codes.contains("ContactNotFoundException") && codes.len() > 20);
    let mut found = Vec::new();
    for rel in files(&root().join("src")) {
        if rel.starts_with("error") || test_only(&rel) {
            continue;
        }
        let text = code(&root().join("src").join(&rel));
        for code in &codes {
            if text.contains(&format!("\"{code}\"")) {
                found.push(format!("src/{} names {code}", rel.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn no_file_in_src_passes_six_hundred_lines_before_its_tests() {
    let long: Vec<String> = files(&root().join("src"))
        .into_iter()
        .filter(|rel| !test_only(rel))
        .filter_map(|rel| {
            let lines = code(&root().join("src").join(&rel)).lines().count();
            (lines > MAX_LINES).then(|| format!("src/{}: {lines} lines", rel.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:#?}");
}

#[test]
fn every_file_has_its_row_in_the_layout() {
    let layout = std::fs::read_to_string(root().join("docs/development.md")).unwrap();
    let mut missing = Vec::new();
    for dir in ["src", "standin/src"] {
        for rel in files(&root().join(dir)) {
            let row = format!("| `{}` |", rel.display());
            if !layout.contains(&row) {
                missing.push(format!("{dir}/{}", rel.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/development.md, Layout, has no row for {missing:#?}"
    );
}
