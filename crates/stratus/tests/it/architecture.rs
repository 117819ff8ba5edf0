//! The shape of the code: the crate's top-level modules import each other without cycles, and
//! so do the parts of the user pool, so each can be read, tested and moved (to the coming core
//! crate, say) with only what it names. The graphs are read from the source: every
//! `crate::<module>` path outside comments; inside a module, every `super::` path, with the
//! names the module re-exports traced to the part that defines them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level modules (`src/<name>.rs` or `src/<name>/`), each with the files it is made of.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).expect("name").to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
        modules.insert(name, files);
    }
    modules
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

/// The top-level modules `source` names as `crate::<name>`, comments left out.
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let mut uses = BTreeSet::new();
        for file in files {
            let source = std::fs::read_to_string(file).expect("source");
            uses.extend(
                named_modules(&source).into_iter().filter(|used| used != name && modules.contains_key(used)),
            );
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// The parts of the module in `dir` (its files other than `mod.rs`) and which parts each names:
/// `super::<part>`, `crate::<module>::<part>`, or an item `mod.rs` re-exports from a part.
fn part_graph(dir: &Path, module: &str) -> Graph {
    let parts: BTreeSet<String> = rust_files(dir)
        .iter()
        .filter_map(|file| file.file_stem()?.to_str().map(str::to_owned))
        .filter(|name| name != "mod")
        .collect();
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
    for part in &parts {
        let source = std::fs::read_to_string(dir.join(format!("{part}.rs"))).expect("part");
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
    let code = "use crate::table::Item; // not crate::app\nlet x = crate::http::Problem::new();";
    assert_eq!(named_modules(code), BTreeSet::from(["table".to_owned(), "http".to_owned()]));
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles between top-level modules: {found:?}");
}

#[test]
fn the_parts_of_the_user_pool_import_each_other_without_cycles() {
    let identity = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/identity");
    let graph = part_graph(&identity, "identity");
    assert!(graph.contains_key("pool") && graph["store"].contains("model"), "{graph:?}");
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles inside identity: {found:?}");
}
