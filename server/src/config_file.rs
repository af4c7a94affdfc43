//! The configuration file (`--config PATH`): a TOML table whose keys are
//! the long options' names exactly (`listen`, `keepalive-timeout`), turned
//! into `--key value` arguments that go before the command line's own.
//! clap then parses both under one set of rules, and the command line
//! wins because a later occurrence of an option overrides an earlier one.
//!
//! Each key is also parsed on its own first, so that a bad one is reported
//! with the file, its line and column, and its name. A flag takes `true`
//! or `false`; any other option a string or an integer (a size may be
//! `"64M"` or `67108864`); a repeatable option also an array, whose items
//! come before the command line's own (which add to them). Unknown keys,
//! other types (floats, dates, tables) and the command-only options
//! (`config`, `check-config`, `print-man-page`, `print-completions`, and
//! the internal `worker`) are errors.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory};

use crate::config::Args;

/// Options that act on this run only and make no sense in a file.
pub(crate) const COMMAND_ONLY: [&str; 7] = [
    "worker",
    "config",
    "check-config",
    "print-man-page",
    "print-completions",
    "help",
    "version",
];

/// What is wrong with a configuration file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileError {
    pub(crate) path: PathBuf,
    /// Line and column (from 1), when the error has a place.
    pub(crate) at: Option<(usize, usize)>,
    /// The key at fault, if any.
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// A file read into arguments.
#[derive(Debug, Clone)]
pub(crate) struct FileArgs {
    pub(crate) path: PathBuf,
    /// `--key value` pairs (a flag alone), in the file's order.
    pub(crate) args: Vec<OsString>,
    /// Each key with its line and column.
    pub(crate) keys: Vec<(String, (usize, usize))>,
}

impl FileArgs {
    /// Reads and checks the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<FileArgs, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            path: path.to_path_buf(),
            at: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        FileArgs::parse(path, &text)
    }

    /// Checks `text`, the contents of `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<FileArgs, FileError> {
        FileArgs::parse_for(&Args::command(), path, text)
    }

    /// Checks `text` against the options of `command`.
    fn parse_for(command: &clap::Command, path: &Path, text: &str) -> Result<FileArgs, FileError> {
        let error = |at: Option<(usize, usize)>, key: Option<&str>, message: String| FileError {
            path: path.to_path_buf(),
            at,
            key: key.map(str::to_owned),
            message,
        };
        let spans = toml::de::DeTable::parse(text).map_err(|e| {
            let at = e.span().map(|span| line_column(text, span.start));
            error(at, None, e.message().trim().to_owned())
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| error(None, None, e.message().trim().to_owned()))?;
        let mut file = FileArgs {
            path: path.to_path_buf(),
            args: Vec::new(),
            keys: Vec::new(),
        };
        for (key, span) in spans.get_ref().keys().map(|k| (k.get_ref(), k.span())) {
            let position = line_column(text, span.start);
            let fail = |message: String| error(Some(position), Some(key), message);
            let Some(value) = table.get(key.as_ref()) else {
                continue;
            };
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_ref()))
                .filter(|_| !COMMAND_ONLY.contains(&key.as_ref()));
            let Some(arg) = arg else {
                return Err(fail(
                    "unknown key (the keys are the long options' names, as in `server --help`)"
                        .into(),
                ));
            };
            let option = format!("--{key}");
            let mut own = Vec::new();
            match (arg.get_action(), value) {
                (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                    if *on {
                        own.push(OsString::from(&option));
                    }
                }
                (ArgAction::SetTrue, _) => return Err(fail("must be true or false".into())),
                (ArgAction::Append, toml::Value::Array(items)) => {
                    for item in items {
                        let text = scalar(item).ok_or_else(|| {
                            fail("must be an array of strings or integers".into())
                        })?;
                        own.extend([OsString::from(&option), text.into()]);
                    }
                }
                (_, value) => {
                    let text = scalar(value)
                        .ok_or_else(|| fail("must be a string or an integer".into()))?;
                    own.extend([OsString::from(&option), text.into()]);
                }
            }
            // The key on its own, so that a bad value is reported here.
            let alone = std::iter::once(OsString::from("server")).chain(own.iter().cloned());
            if let Err(e) = command.clone().try_get_matches_from(alone) {
                return Err(fail(clap_message(&e)));
            }
            file.args.extend(own);
            file.keys.push((key.to_string(), position));
        }
        Ok(file)
    }

    /// Where `key` is set in the file, if it is.
    pub(crate) fn position_of(&self, key: &str) -> Option<(usize, usize)> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, at)| *at)
    }
}

/// A string or an integer as option text.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first line of a clap error, without its `error: `.
pub(crate) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The line and column (from 1, in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<String>, String> {
        FileArgs::parse(Path::new("a.toml"), text)
            .map(|f| {
                f.args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_become_options() {
        let args = parse(
            "listen = \"127.0.0.1:9\"\nhelpers = 3\ncache-size = \"1M\"\n\
             status-allow-remote = true\n",
        );
        assert_eq!(
            args.as_deref(),
            Ok(&[
                "--listen",
                "127.0.0.1:9",
                "--helpers",
                "3",
                "--cache-size",
                "1M",
                "--status-allow-remote"
            ]
            .map(String::from)[..])
        );
        assert_eq!(parse("status-allow-remote = false\n"), Ok(vec![]));
    }

    #[test]
    fn mistakes_say_where() {
        assert_eq!(
            parse("helpers = 2\n  nope = 1\n"),
            Err("a.toml:2:3: key `nope`: unknown key (the keys are the long options' names, as in `server --help`)".into())
        );
        let bad = parse("helpers = 100\n").expect_err("out of range");
        assert!(bad.starts_with("a.toml:1:1: key `helpers`: "), "{bad}");
        assert!(bad.contains("1..=64"), "{bad}");
        assert_eq!(
            parse("status-allow-remote = \"yes\"\n"),
            Err("a.toml:1:1: key `status-allow-remote`: must be true or false".into())
        );
        assert_eq!(
            parse("helpers = 2.5\n"),
            Err("a.toml:1:1: key `helpers`: must be a string or an integer".into())
        );
        assert!(parse("config = \"x\"\n")
            .expect_err("command-only")
            .contains("unknown key"));
        let syntax = parse("helpers = \n").expect_err("syntax");
        assert!(syntax.starts_with("a.toml:1:"), "{syntax}");
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let file = FileArgs::parse(
            Path::new("a.toml"),
            "helpers = 3\nlisten = \"127.0.0.1:1\"\n",
        )
        .expect("parses");
        let argv = std::iter::once(OsString::from("server"))
            .chain(file.args)
            .chain(["--helpers", "5", "--helpers", "6"].map(OsString::from));
        let args = <Args as clap::Parser>::try_parse_from(argv).expect("repeats override");
        assert_eq!(args.helpers, 6);
        let ports: Vec<u16> = args.listen.iter().map(|a| a.port()).collect();
        assert_eq!(ports, [1]);
        let flags = ["server", "--status-allow-remote", "--status-allow-remote"];
        assert!(
            <Args as clap::Parser>::try_parse_from(flags).is_ok(),
            "a repeated flag"
        );
    }

    #[test]
    fn arrays_repeat_a_repeatable_option_and_the_command_line_adds() {
        use clap::{Arg, Command};
        let command = Command::new("t")
            .args_override_self(true)
            .arg(Arg::new("tag").long("tag").action(ArgAction::Append))
            .arg(Arg::new("one").long("one"));
        let file = FileArgs::parse_for(&command, Path::new("a.toml"), "tag = [\"a\", 2]\n")
            .expect("an array");
        let argv = std::iter::once(OsString::from("t"))
            .chain(file.args)
            .chain(["--tag", "c"].map(OsString::from));
        let matches = command.clone().try_get_matches_from(argv).expect("parses");
        let tags: Vec<&String> = matches.get_many("tag").expect("tags").collect();
        assert_eq!(tags, ["a", "2", "c"]);
        let text = FileArgs::parse_for(&command, Path::new("a.toml"), "one = [\"a\"]\n")
            .expect_err("an array for a single option")
            .to_string();
        assert!(text.ends_with("must be a string or an integer"), "{text}");
        let text = FileArgs::parse_for(&command, Path::new("a.toml"), "tag = [1.5]\n")
            .expect_err("a float in the array")
            .to_string();
        assert!(
            text.ends_with("must be an array of strings or integers"),
            "{text}"
        );
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_column("ab\ncé = 1", 6), (2, 3));
        assert_eq!(line_column("x", 0), (1, 1));
    }
}
