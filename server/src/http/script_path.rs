//! Where a script ends in a request path: the first segment ending in
//! `.cgi` is the script, the rest its `PATH_INFO`.

/// Splits a path at its first segment ending in `.cgi`: the script and
/// the PATH_INFO after it.
pub(crate) fn split_script(key: &str) -> Option<(String, String)> {
    let end = script_end(key)?;
    Some((key[..end].to_string(), key[end..].to_string()))
}

/// Where the first segment of `key` that names a script (`x.cgi`, more
/// than the suffix) ends, if any: one pass over the bytes.
fn script_end(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    let mut start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            if names_script(&bytes[start..at]) {
                return Some(at);
            }
            start = at + 1;
        }
    }
    names_script(&bytes[start..]).then_some(bytes.len())
}

/// A segment ending in `.cgi`, with a name before it.
fn names_script(segment: &[u8]) -> bool {
    segment.len() > 4 && segment.ends_with(b".cgi")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_split_from_their_path_info() {
        let split = |key: &str| split_script(key);
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(split("a.cgi"), pair("a.cgi", ""));
        assert_eq!(split("cgi-bin/a.cgi/x/y"), pair("cgi-bin/a.cgi", "/x/y"));
        assert_eq!(split("a.cgi/b.cgi"), pair("a.cgi", "/b.cgi"));
        assert_eq!(split("d/a.cgi/"), pair("d/a.cgi", "/"));
        assert_eq!(split(".cgi"), None);
        assert_eq!(split("d/.cgi/x"), None);
        assert_eq!(split("a.cgix"), None);
        assert_eq!(split("a.CGI"), None);
        assert_eq!(split(""), None);
        assert_eq!(split("a.cgi.txt/b"), None);
    }
}
