//! The layering of `server/src`, held: every `crate::…`, `super::…` and
//! `self::…` path in every server source file must point to a module on
//! its own level or below (ARCHITECTURE.md, "Layers"), every file must
//! have a level, and no files may import each other round a circle. A
//! failure names the file, the line, the path and both levels.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The levels from the bottom, each with its modules; a path's level is
/// that of the longest module it starts with. Keep in step with
/// ARCHITECTURE.md's "Layers".
const LEVELS: &[(&str, &[&str])] = &[
    (
        "platform",
        &[
            "event",
            "token",
            "signals",
            "systemd",
            "privileges",
            "backoff",
            "listener",
            "inherited_fds",
            "conn_id",
            "unlinked_file",
            "process_group",
        ],
    ),
    ("protocol", &["http", "h2", "send", "transport"]),
    (
        "output and configuration",
        &["output", "config", "config_file", "tls_config"],
    ),
    (
        "content",
        &["cache", "listing", "respond", "cgi", "access_log"],
    ),
    ("children", &["supervise"]),
    (
        "connection",
        &["connection", "conn_table", "next", "tls_context"],
    ),
    (
        "subsystems",
        &[
            "static_files",
            "status",
            "send_path",
            "cgi::driver",
            "cgi::pump",
        ],
    ),
    ("the loop", &["server", "startup"]),
    (
        "the entry",
        &[
            "",
            "main",
            "command_line",
            "manual",
            "workers",
            "hostile_input",
        ],
    ),
];

/// One path into the crate, as written in a source file.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    from: Vec<String>,
    to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).expect("server/src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The module a file is: `send/slots.rs` is `send::slots`, `send/mod.rs`
/// is `send`, `lib.rs` the crate itself (no segments).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The tokens of a source file that paths are made of, each with its
/// line; comments, strings and character literals are skipped.
fn tokens(source: &str) -> Vec<(Tok, usize)> {
    let b = source.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let skip = |i: &mut usize, line: &mut usize, len: usize| {
        *line += b[*i..*i + len].iter().filter(|&&c| c == b'\n').count();
        *i += len;
    };
    while i < b.len() {
        let rest = &b[i..];
        let c = rest[0];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            skip(&mut i, &mut line, end);
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            skip(&mut i, &mut line, j.min(rest.len()));
        } else if c == b'r' && matches!(rest.get(1), Some(b'"' | b'#')) {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push((Tok::Ident("r".into()), line));
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let body = 2 + hashes;
            let end = rest[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(rest.len(), |p| body + p + close.len());
            skip(&mut i, &mut line, end);
        } else if c == b'"' || (c == b'b' && rest.get(1) == Some(&b'"')) {
            let mut j = if c == b'b' { 2 } else { 1 };
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            skip(&mut i, &mut line, (j + 1).min(rest.len()));
        } else if c == b'\'' && (rest.get(1) == Some(&b'\\') || rest.get(2) == Some(&b'\'')) {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'\'' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            skip(&mut i, &mut line, (j + 1).min(rest.len()));
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let len = rest
                .iter()
                .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
                .unwrap_or(rest.len());
            let word = String::from_utf8_lossy(&rest[..len]).into_owned();
            out.push((Tok::Ident(word), line));
            i += len;
        } else {
            let (tok, len) = match c {
                b':' if rest.get(1) == Some(&b':') => (Tok::PathSep, 2),
                b'{' => (Tok::Open, 1),
                b'}' => (Tok::Close, 1),
                b',' => (Tok::Comma, 1),
                b'*' => (Tok::Star, 1),
                b'\n' => {
                    line += 1;
                    i += 1;
                    continue;
                }
                c if c.is_ascii_whitespace() => {
                    i += 1;
                    continue;
                }
                _ => (Tok::Other, 1),
            };
            out.push((tok, line));
            i += len;
        }
    }
    out
}

/// Reads the path (or use-tree) starting at `toks[*at]` onto `prefix`,
/// pushing each whole path onto `out`.
fn read_tree(
    toks: &[(Tok, usize)],
    at: &mut usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let mut path = prefix;
    loop {
        match toks.get(*at).map(|t| &t.0) {
            Some(Tok::Ident(word)) if word != "as" => {
                path.push(word.clone());
                *at += 1;
            }
            Some(Tok::Star) => {
                *at += 1;
                break;
            }
            Some(Tok::Open) => {
                *at += 1;
                loop {
                    read_tree(toks, at, path.clone(), out);
                    match toks.get(*at).map(|t| &t.0) {
                        Some(Tok::Comma) => *at += 1,
                        Some(Tok::Close) => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                    if toks.get(*at).map(|t| &t.0) == Some(&Tok::Close) {
                        *at += 1;
                        return;
                    }
                }
            }
            _ => break,
        }
        if toks.get(*at).map(|t| &t.0) == Some(&Tok::PathSep) {
            *at += 1;
        } else {
            break;
        }
    }
    out.push(path);
}

/// Resolves `crate`, `super` and `self` against `module`; `None` for a
/// path that does not start with one of them.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut resolved: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            resolved = Vec::new();
            rest = &path[1..];
        }
        Some("super" | "self") => resolved = module.to_vec(),
        _ => return None,
    }
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                resolved.pop();
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    resolved.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    Some(resolved)
}

/// Every path into the crate that `file` (module `module`) writes.
fn imports_of(file: &str, module: &[String], source: &str) -> Vec<Import> {
    let toks = tokens(source);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`): the brace depth each opened at.
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while at < toks.len() {
        let (tok, line) = &toks[at];
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Open, _))) =
                    (toks.get(at + 1), toks.get(at + 2))
                {
                    inline.push((depth, name.clone()));
                }
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && toks.get(at + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                    && (at == 0 || toks[at - 1].0 != Tok::PathSep) =>
            {
                let here: Vec<String> = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(_, n)| n.clone()))
                    .collect();
                let mut paths = Vec::new();
                let mut end = at;
                read_tree(&toks, &mut end, Vec::new(), &mut paths);
                for path in paths {
                    if let Some(to) = resolve(&here, &path) {
                        found.push(Import {
                            file: file.to_string(),
                            line: *line,
                            from: module.to_vec(),
                            to,
                        });
                    }
                }
                at = end.max(at + 1);
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    found
}

/// The level of a module path, by the longest module of [`LEVELS`] it
/// starts with (the crate root only as itself).
fn level_of(path: &[String]) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (level, (name, modules)) in LEVELS.iter().enumerate() {
        for module in modules.iter() {
            let segments: Vec<&str> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").collect()
            };
            let matches = if segments.is_empty() {
                path.is_empty()
            } else {
                path.len() >= segments.len() && path.iter().zip(&segments).all(|(a, b)| a == b)
            };
            if matches && best.is_none_or(|(len, _, _)| segments.len() >= len) {
                best = Some((segments.len(), level, name));
            }
        }
    }
    best.map(|(_, level, name)| (level, name))
}

/// Every import of every server source file.
fn all_imports() -> (Vec<Vec<String>>, Vec<Import>) {
    let root = src_dir();
    let mut modules = Vec::new();
    let mut imports = Vec::new();
    for path in sources(&root) {
        let relative = path.strip_prefix(&root).expect("below src");
        let module = module_of(relative);
        let source = fs::read_to_string(&path).expect("a readable source file");
        let file = format!("server/src/{}", relative.display());
        imports.extend(imports_of(&file, &module, &source));
        modules.push(module);
    }
    (modules, imports)
}

/// The file module a path lands in: the longest one it starts with.
fn file_of<'a>(modules: &'a [Vec<String>], path: &[String]) -> Option<&'a Vec<String>> {
    modules
        .iter()
        .filter(|m| path.len() >= m.len() && path[..m.len()] == m[..])
        .max_by_key(|m| m.len())
}

/// Files in circles of imports (Tarjan's strongly connected components
/// of more than one file), each circle as its files' modules.
fn circles(modules: &[Vec<String>], imports: &[Import]) -> Vec<Vec<String>> {
    let index: BTreeMap<&Vec<String>, usize> =
        modules.iter().enumerate().map(|(i, m)| (m, i)).collect();
    let mut edges = vec![Vec::new(); modules.len()];
    for import in imports {
        let (Some(&from), Some(to)) = (index.get(&import.from), file_of(modules, &import.to))
        else {
            continue;
        };
        let to = index[to];
        if from != to && !edges[from].contains(&to) {
            edges[from].push(to);
        }
    }
    struct Tarjan<'e> {
        edges: &'e [Vec<usize>],
        next: usize,
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        found: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.order[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.edges[v] {
                match self.order[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(o) if self.on_stack[w] => self.low[v] = self.low[v].min(o),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.order[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let n = modules.len();
    let mut t = Tarjan {
        edges: &edges,
        next: 0,
        order: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        found: Vec::new(),
    };
    for v in 0..n {
        if t.order[v].is_none() {
            t.visit(v);
        }
    }
    t.found
        .into_iter()
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|&i| shown(&modules[i])).collect();
            names.sort();
            names
        })
        .collect()
}

fn shown(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

#[test]
fn every_module_has_a_level() {
    let (modules, _) = all_imports();
    let missing: Vec<String> = modules
        .iter()
        .filter(|m| level_of(m).is_none())
        .map(|m| shown(m))
        .collect();
    assert!(
        missing.is_empty(),
        "modules with no level in LEVELS: {missing:?}"
    );
}

#[test]
fn no_module_imports_from_a_level_above_its_own() {
    let (_, imports) = all_imports();
    let mut upward = Vec::new();
    for i in &imports {
        let (Some((from, from_name)), Some((to, to_name))) = (level_of(&i.from), level_of(&i.to))
        else {
            continue;
        };
        if to <= from {
            continue;
        }
        let path = format!("crate::{}", i.to.join("::"));
        upward.push(format!(
            "{}:{}: `{path}` ({from_name}) points up to {to_name}",
            i.file, i.line
        ));
    }
    assert!(
        upward.is_empty(),
        "{} upward imports:\n{}",
        upward.len(),
        upward.join("\n")
    );
}

/// The protocol folders are leaves: `http/`, `h2/` and `send/` import
/// nothing of the crate outside themselves (std, httparse, libc, nix and
/// the protocol crate only), so that HTTP/1.1 and HTTP/2 can be read,
/// tested and framed without the rest.
#[test]
fn the_protocol_folders_import_only_themselves() {
    let (_, imports) = all_imports();
    let outside: Vec<String> = imports
        .iter()
        .filter(|i| {
            let folder = i.from.first().map(String::as_str);
            matches!(folder, Some("http" | "h2" | "send")) && i.to.first() != i.from.first()
        })
        .map(|i| format!("{}:{}: crate::{}", i.file, i.line, i.to.join("::")))
        .collect();
    assert!(
        outside.is_empty(),
        "imports out of a protocol folder:\n{}",
        outside.join("\n")
    );
}

#[test]
fn no_files_import_each_other_round_a_circle() {
    let (modules, imports) = all_imports();
    let found = circles(&modules, &imports);
    let listed: Vec<String> = found.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        listed.is_empty(),
        "files that import each other round a circle:\n{}",
        listed.join("\n")
    );
}

#[test]
fn the_reader_sees_every_kind_of_path() {
    let source = "use crate::a::{b::C, d, e::{f, g as h}};\n\
                  // use crate::commented::Out;\n\
                  let s = \"crate::in_a_string\";\n\
                  use super::sibling;\n\
                  pub(crate) fn x() { crate::z::call(); }\n\
                  mod tests { use super::*; }\n";
    let module = vec!["m".to_string(), "n".to_string()];
    let found: Vec<String> = imports_of("f.rs", &module, source)
        .iter()
        .map(|i| i.to.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "a::b::C",
            "a::d",
            "a::e::f",
            "a::e::g",
            "m::sibling",
            "z::call",
            "m::n"
        ],
    );
}

#[test]
fn an_upward_import_is_named() {
    let low = vec!["http".to_string(), "body".to_string()];
    let imports = imports_of(
        "server/src/http/body.rs",
        &low,
        "use crate::output::Output;",
    );
    let (from, _) = level_of(&imports[0].from).expect("http has a level");
    let (to, _) = level_of(&imports[0].to).expect("output has a level");
    assert!(to > from, "http sits below the output queue");
}
