//! Turning a request target into a path beneath the document root.
//!
//! The path is percent-decoded exactly once; `.` and empty segments are
//! dropped; `..` removes the previous segment and is refused if it would
//! climb above the root; NUL bytes and hidden (dot) files are refused.
//! The result is the cache key and the path sent to a helper: relative,
//! without a leading slash, with a trailing slash when the request names
//! a directory's index (the root's index is the empty path).

use percent_encoding::percent_decode;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Not an origin-form or absolute-form target.
    NotAPath,
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    BadEncoding,
    /// A NUL byte.
    Nul,
    /// `..` above the root.
    ClimbsAboveRoot,
    /// A segment that starts with `.`.
    Hidden,
}

/// A request target split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Normalised, decoded path (see the module docs).
    pub(crate) key: String,
    /// The query string without its `?`, if any.
    pub(crate) query: Option<String>,
    /// The authority of an absolute-form target (`host:port` of
    /// `http://host:port/p`), unchecked: the request's parser validates
    /// it, and it wins over the `Host` header.
    pub(crate) authority: Option<String>,
}

/// True when a key names a directory's index.
pub(crate) fn is_directory_key(key: &str) -> bool {
    key.is_empty() || key.ends_with('/')
}

/// Parses an origin-form (`/a/b?q`) or absolute-form
/// (`http://host/a/b?q`) request target.
pub(crate) fn parse_target(target: &str) -> Result<Target, PathError> {
    match split_plain(target) {
        Some((path, query)) => Ok(Target {
            key: path[1..].to_string(),
            query: query.map(str::to_string),
            authority: None,
        }),
        None => parse_any_target(target),
    }
}

/// The fast path: an origin-form target whose path normalisation would
/// leave as it is (see [`is_plain`]) and that has no fragment, split into
/// its path and query in one pass over its bytes. `None` for any other
/// target, which [`parse_any_target`] then parses.
fn split_plain(target: &str) -> Option<(&str, Option<&str>)> {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    let mut previous = 0;
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'?' => {
                let query = &target[at + 1..];
                let query = &query[..query.find('#').unwrap_or(query.len())];
                return Some((&target[..at], Some(query)));
            }
            b'#' | b'%' => return None,
            b'/' | b'.' if previous == b'/' => return None,
            _ if b <= 0x20 || b == 0x7f => return None,
            _ => previous = b,
        }
    }
    Some((target, None))
}

/// Parses any target: absolute-form, escapes, segments to normalise.
fn parse_any_target(target: &str) -> Result<Target, PathError> {
    let (authority, rest) = split_absolute_form(target)?;
    // A fragment is not part of a request; whatever follows `#` goes.
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rest, None),
    };
    // `http://host` and `http://host?q` have an empty path: the root.
    let path = if authority.is_some() && path.is_empty() {
        "/"
    } else {
        path
    };
    let authority = authority.map(str::to_string);
    if !path.starts_with('/') {
        return Err(PathError::NotAPath);
    }
    if is_plain(path) {
        return Ok(Target {
            key: path[1..].to_string(),
            query,
            authority,
        });
    }
    if !valid_escapes(path.as_bytes()) {
        return Err(PathError::BadEncoding);
    }
    let decoded = percent_decode(path.as_bytes()).collect::<Vec<u8>>();
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadEncoding)?;
    Ok(Target {
        key: normalise(&decoded)?,
        query,
        authority,
    })
}

/// True for a path that normalisation would leave as it is: no escapes,
/// no empty, `.`-leading or control-character segments.
fn is_plain(path: &str) -> bool {
    !path.contains("//")
        && !path.contains("/.")
        && path.bytes().all(|b| b != b'%' && b > 0x20 && b != 0x7f)
}

/// Splits an absolute-form target (`http://authority/path?query`) into
/// its authority and the rest (path and query); an origin-form target
/// comes back whole with no authority. The authority ends at the first
/// `/`, `?` or `#`, so `http://h?x=/y` has the authority `h`, an empty
/// path and the query `x=/y`.
fn split_absolute_form(target: &str) -> Result<(Option<&str>, &str), PathError> {
    let scheme = target.get(..8).map(str::as_bytes);
    let rest = match scheme {
        Some(s) if s[..7].eq_ignore_ascii_case(b"http://") => &target[7..],
        Some(s) if s.eq_ignore_ascii_case(b"https://") => &target[8..],
        _ => return Ok((None, target)),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if end == 0 {
        return Err(PathError::NotAPath);
    }
    Ok((Some(&rest[..end]), &rest[end..]))
}

fn valid_escapes(path: &[u8]) -> bool {
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let hex = |b: Option<&u8>| b.is_some_and(u8::is_ascii_hexdigit);
            if !hex(path.get(i + 1)) || !hex(path.get(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn normalise(decoded: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut directory = decoded.ends_with('/');
    for segment in decoded.split('/') {
        match segment {
            "" | "." => directory = true,
            ".." => {
                segments.pop().ok_or(PathError::ClimbsAboveRoot)?;
                directory = true;
            }
            s => {
                segments.push(s);
                directory = false;
            }
        }
    }
    // The loop ends on the last segment: a name resets `directory`, so
    // only an explicit trailing `/`, `.` or `..` leaves it set.
    directory |= decoded.ends_with('/');
    if segments.iter().any(|s| s.starts_with('.')) {
        return Err(PathError::Hidden);
    }
    let mut key = segments.join("/");
    if directory && !key.is_empty() {
        key.push('/');
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str) -> Result<String, PathError> {
        parse_target(t).map(|t| t.key)
    }

    #[test]
    fn paths_normalise() {
        assert_eq!(key("/"), Ok("".into()));
        assert_eq!(key("/index.html"), Ok("index.html".into()));
        assert_eq!(key("/a/b/"), Ok("a/b/".into()));
        assert_eq!(key("/a//b"), Ok("a/b".into()));
        assert_eq!(key("/a/./b"), Ok("a/b".into()));
        assert_eq!(key("/a/../index.html"), Ok("index.html".into()));
        assert_eq!(key("/a/.."), Ok("".into()));
        assert_eq!(key("/a/b/.."), Ok("a/".into()));
        assert_eq!(key("/a/."), Ok("a/".into()));
        assert_eq!(key("/hello%20world.txt"), Ok("hello world.txt".into()));
        assert_eq!(key("http://example.com/x?y"), Ok("x".into()));
        assert_eq!(key("http://example.com"), Ok("".into()));
    }

    #[test]
    fn absolute_form_splits_at_the_authority() {
        let t = parse_target("http://h?x=/y").expect("valid");
        assert_eq!((t.key.as_str(), t.query.as_deref()), ("", Some("x=/y")));
        assert_eq!(t.authority.as_deref(), Some("h"));
        let t = parse_target("HTTP://h:81/a/b?q#frag").expect("valid");
        assert_eq!((t.key.as_str(), t.query.as_deref()), ("a/b", Some("q")));
        assert_eq!(t.authority.as_deref(), Some("h:81"));
        let t = parse_target("http://h#x/y").expect("valid");
        assert_eq!((t.key.as_str(), t.query.as_deref()), ("", None));
        assert_eq!(parse_target("/p").expect("valid").authority, None);
        assert_eq!(key("http:///p"), Err(PathError::NotAPath));
        assert_eq!(key("http://"), Err(PathError::NotAPath));
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(key("/../etc/passwd"), Err(PathError::ClimbsAboveRoot));
        assert_eq!(key("/%2e%2e/etc/passwd"), Err(PathError::ClimbsAboveRoot));
        assert_eq!(key("/a/%2E%2E/%2e%2e/x"), Err(PathError::ClimbsAboveRoot));
        assert_eq!(key("/a%00.html"), Err(PathError::Nul));
        assert_eq!(key("/%zz"), Err(PathError::BadEncoding));
        assert_eq!(key("/%4"), Err(PathError::BadEncoding));
        assert_eq!(key("/%ff"), Err(PathError::BadEncoding));
        assert_eq!(key("/.git/config"), Err(PathError::Hidden));
        assert_eq!(key("/a/.htaccess"), Err(PathError::Hidden));
        assert_eq!(key("/%2ehidden"), Err(PathError::Hidden));
        assert_eq!(key("*"), Err(PathError::NotAPath));
        assert_eq!(key("index.html"), Err(PathError::NotAPath));
    }

    #[test]
    fn decoding_happens_once() {
        // %252e decodes to the literal text "%2e", not to ".".
        assert_eq!(key("/%252e%252e/x"), Ok("%2e%2e/x".into()));
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_parser() {
        let targets = [
            "/",
            "/index.html",
            "/a/b/",
            "/a.b/c.d",
            "/a?",
            "/a?x=1",
            "/a?x=/../y#f",
            "/?x",
            "/a/?q#f",
            "/caf\u{e9}",
            "/a..b",
            "/a./b",
            "/~user/x",
            "/a+b=c;d",
        ];
        for target in targets {
            assert!(
                split_plain(target).is_some(),
                "{target:?} takes the fast path"
            );
            assert_eq!(parse_target(target), parse_any_target(target), "{target:?}");
        }
    }

    #[test]
    fn the_fast_path_leaves_the_rest_to_the_general_parser() {
        let targets = [
            "",
            "*",
            "a/b",
            "//a",
            "/a//b",
            "/.env",
            "/a/.git",
            "/a/./b",
            "/a/../b",
            "/..",
            "/.",
            "/a%20b",
            "/a#f",
            "/a#f?x",
            "/a b",
            "/a\tb",
            "/a\x7fb",
            "/a\0b",
            "http://h/a",
            "HTTPS://h/a",
        ];
        for target in targets {
            assert_eq!(split_plain(target), None, "{target:?}");
            assert_eq!(parse_target(target), parse_any_target(target), "{target:?}");
        }
    }

    #[test]
    fn query_is_kept() {
        let t = parse_target("/dir?x=1&y=2").expect("valid");
        assert_eq!(t.key, "dir");
        assert_eq!(t.query.as_deref(), Some("x=1&y=2"));
        assert!(!is_directory_key(&t.key));
    }
}
