//! The shape of the code. The crate is four layers — `infra`, `ports`, `services`, `apps` —
//! and the wiring above them (`app`, `component`, `config`, `platform`, `health`, `cli`). Its
//! components (`<layer>::<name>`, or a wiring module) import each other without cycles and
//! only from their own layer or below, and so do the parts of the user pool, so each can be
//! read, tested and moved (to the coming core crate, say) with only what it names. The graphs
//! are read from the source: every `crate::` path outside comments; inside a module, every
//! `super::` path, with the names the module re-exports traced to the part that defines them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The layers, lowest first; a component may use its own layer and those below.
const LAYERS: [&str; 4] = ["infra", "ports", "services", "apps"];

/// Where a component is allowed to reach up a layer, and why.
const EXCEPTIONS: [(&str, &str); 1] = [
    // The edge's on-the-fly image variants run the media app's thumbnail engine, as a
    // Lambda@Edge function would.
    ("services::edge", "apps::media"),
];

/// A component's `install` part is wiring: the one place it meets the installer.
const WIRING_PART: &str = "install.rs";

fn rank(component: &str) -> usize {
    let layer = component.split("::").next().unwrap_or_default();
    LAYERS.iter().position(|name| *name == layer).unwrap_or(LAYERS.len())
}

/// The components under `src` (`<layer>::<name>` inside a layer's folder, the wiring modules by
/// their name), each with the files it is made of.
fn components(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut components = BTreeMap::new();
    for (name, path) in children(src) {
        if name == "lib" || name == "main" || name == "mod" {
            continue;
        }
        if LAYERS.contains(&name.as_str()) {
            for (part, path) in children(&path).into_iter().filter(|(part, _)| part != "mod") {
                components.insert(format!("{name}::{part}"), files_of(&path));
            }
        } else {
            components.insert(name, files_of(&path));
        }
    }
    components
}

fn children(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).expect("directory") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).expect("name").to_owned();
        children.push((name, path));
    }
    children
}

fn files_of(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() { rust_files(path) } else { vec![path.to_owned()] }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// The components `source` names as `crate::<layer>::<name>` or `crate::<module>`, comments
/// left out.
fn named_components(source: &str) -> BTreeSet<String> {
    let ident = |text: &str| -> String {
        text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let mut named = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let first = ident(rest);
            let name = match rest[first.len()..].strip_prefix("::") {
                Some(tail) if LAYERS.contains(&first.as_str()) => format!("{first}::{}", ident(tail)),
                _ => first,
            };
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

/// Which components each component names; an `install` part counts as wiring, not as its
/// component's.
fn graph(src: &Path) -> Graph {
    let components = components(src);
    let mut graph = Graph::new();
    for (name, files) in &components {
        let mut uses = BTreeSet::new();
        for file in files.iter().filter(|file| !file.ends_with(WIRING_PART)) {
            let source = std::fs::read_to_string(file).expect("source");
            uses.extend(
                named_components(&source)
                    .into_iter()
                    .filter(|used| used != name && components.contains_key(used)),
            );
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// The uses that reach up a layer and are not among the exceptions.
fn upward(graph: &Graph) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (component, uses) in graph {
        for used in uses {
            let excepted = EXCEPTIONS.contains(&(component.as_str(), used.as_str()));
            if rank(used) > rank(component) && !excepted {
                found.push((component.clone(), used.clone()));
            }
        }
    }
    found
}

/// The parts of the module in `dir` (its files other than `mod.rs`, and its folders) and which
/// parts each names:
/// `super::<part>`, `crate::<module>::<part>`, or an item `mod.rs` re-exports from a part.
fn part_graph(dir: &Path, module: &str) -> Graph {
    // A part is a file beside `mod.rs` or a folder of its own (read whole).
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("directory") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()).map(str::to_owned) else { continue };
        let files = if path.is_dir() {
            rust_files(&path)
        } else if path.extension().is_some_and(|extension| extension == "rs") && name != "mod" {
            vec![path]
        } else {
            continue;
        };
        let source: String =
            files.iter().map(|file| std::fs::read_to_string(file).expect("part") + "\n").collect();
        sources.insert(name, source);
    }
    let parts: BTreeSet<String> = sources.keys().cloned().collect();
    let parent = std::fs::read_to_string(dir.join("mod.rs")).expect("mod.rs");
    let mut defined_in = BTreeMap::new();
    for line in parent.lines().filter_map(|line| line.trim().strip_prefix("pub use ")) {
        if let Some((part, items)) = line.split_once("::") {
            for item in items.trim_matches(|c: char| "{};".contains(c)).split(',') {
                defined_in.insert(item.trim().to_owned(), part.to_owned());
            }
        }
    }
    let resolve = |name: &str| {
        if parts.contains(name) { Some(name.to_owned()) } else { defined_in.get(name).cloned() }
    };
    let mut graph = Graph::new();
    for (part, source) in &sources {
        let mut uses = BTreeSet::new();
        for line in source.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for prefix in ["super::".to_owned(), format!("crate::{module}::")] {
                let mut rest = code;
                while let Some(at) = rest.find(prefix.as_str()) {
                    rest = &rest[at + prefix.len()..];
                    let named: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
                        None => vec![rest],
                    };
                    for name in named {
                        let name: String = name
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        uses.extend(resolve(&name).filter(|used| used != part));
                    }
                }
            }
        }
        graph.insert(part.clone(), uses);
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        next: usize,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, module: &'a str) {
            self.index.insert(module, self.next);
            self.low.insert(module, self.next);
            self.next += 1;
            self.stack.push(module);
            for used in self.graph.get(module).into_iter().flatten() {
                if !self.index.contains_key(used.as_str()) {
                    self.visit(used);
                    let low = self.low[module].min(self.low[used.as_str()]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&used.as_str()) {
                    let low = self.low[module].min(self.index[used.as_str()]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let at = self.stack.iter().rposition(|entry| *entry == module).expect("on the stack");
                let component: Vec<String> =
                    self.stack.split_off(at).into_iter().map(str::to_owned).collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in graph.keys() {
        if !walk.index.contains_key(module.as_str()) {
            walk.visit(module);
        }
    }
    walk.found
}

#[test]
fn the_cycle_finder_finds_cycles_and_only_cycles() {
    let graph: Graph =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"]), ("e", vec![])]
            .into_iter()
            .map(|(module, uses)| (module.to_owned(), uses.into_iter().map(str::to_owned).collect()))
            .collect();
    let mut found = cycles(&graph);
    found.iter_mut().for_each(|cycle| cycle.sort());
    assert_eq!(found, vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    let code = "use crate::ports::table::Item; // not crate::app\nlet x = crate::infra::http::Problem::new();\ncrate::config::Config";
    assert_eq!(
        named_components(code),
        BTreeSet::from(["ports::table".to_owned(), "infra::http".to_owned(), "config".to_owned()])
    );
    let layered: Graph = [("infra::clock", vec!["ports::table"]), ("ports::table", vec!["infra::clock"])]
        .into_iter()
        .map(|(module, uses)| (module.to_owned(), uses.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(upward(&layered), vec![("infra::clock".to_owned(), "ports::table".to_owned())]);
}

#[test]
fn components_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 15, "components found: {:?}", graph.keys());
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles between components: {found:?}");
}

#[test]
fn components_use_only_their_own_layer_and_those_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph["apps::blog"].contains("ports::table"), "{graph:?}");
    let found = upward(&graph);
    assert!(found.is_empty(), "uses that reach up a layer: {found:?}");
}

#[test]
fn the_parts_of_the_user_pool_import_each_other_without_cycles() {
    let user_pool = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services/cognito/user_pool");
    let graph = part_graph(&user_pool, "services::cognito::user_pool");
    assert!(graph["pool"].contains("store") && graph["store"].contains("model"), "{graph:?}");
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles inside the user pool: {found:?}");
}

#[test]
fn the_authorizer_and_token_format_need_no_user_pool() {
    // What a Lambda's authorizer compiles: it must not pull in the user-pool server and its SQLite.
    let cognito = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services/cognito");
    for part in ["authorizer.rs", "tokens.rs"] {
        let source = std::fs::read_to_string(cognito.join(part)).expect("source");
        let code: String = source.lines().map(|line| line.split("//").next().unwrap_or_default()).collect();
        assert!(!code.contains("user_pool"), "{part} names the user pool");
        let named = named_components(&source);
        assert!(
            named.iter().all(|used| used.starts_with("infra::") || used == "services::cognito"),
            "{part}: {named:?}"
        );
    }
}
