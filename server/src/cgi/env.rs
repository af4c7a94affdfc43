//! The environment a CGI script runs with: the RFC 3875 meta-variables,
//! the usual extras (REMOTE_PORT, REQUEST_URI, SCRIPT_FILENAME,
//! DOCUMENT_ROOT) and HTTP_* for request headers. Nothing of the server's
//! own environment is passed but PATH. `Proxy` never becomes HTTP_PROXY
//! (httpoxy) and `Authorization` is not passed.

use std::net::SocketAddr;
use std::path::Path;

use crate::http::head_writer::SERVER_NAME;

/// The PATH scripts get.
pub(crate) const SCRIPT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What the environment is built from.
#[derive(Debug, Clone)]
pub(crate) struct CgiEnvInput<'a> {
    pub(crate) method: &'a str,
    pub(crate) http10: bool,
    /// The request came over HTTP/2.
    pub(crate) http2: bool,
    /// `/cgi-bin/app.cgi` (decoded).
    pub(crate) script_name: &'a str,
    /// `/extra/path` (decoded), or empty.
    pub(crate) path_info: &'a str,
    pub(crate) query: &'a str,
    /// The request target as sent.
    pub(crate) request_uri: &'a str,
    pub(crate) headers: &'a [(String, String)],
    /// The request's validated host (without its port), if it named one.
    pub(crate) host: Option<&'a str>,
    /// The body length the script will read (de-chunked), if any.
    pub(crate) content_length: Option<u64>,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    /// The request came over TLS.
    pub(crate) https: bool,
    /// The document root (absolute).
    pub(crate) root: &'a Path,
}

/// Builds the script's complete environment.
pub(crate) fn build_env(input: &CgiEnvInput<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(32 + input.headers.len());
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    let header = |name: &str| {
        input
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let root = input.root.to_string_lossy();
    let auth_type = header("authorization")
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("");
    set("AUTH_TYPE", auth_type.to_string());
    if let Some(length) = input.content_length {
        set("CONTENT_LENGTH", length.to_string());
    }
    if let Some(ct) = header("content-type") {
        set("CONTENT_TYPE", ct.to_string());
    }
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set("PATH_INFO", input.path_info.to_string());
    if !input.path_info.is_empty() {
        set(
            "PATH_TRANSLATED",
            format!("{}{}", root.trim_end_matches('/'), input.path_info),
        );
    }
    set("QUERY_STRING", input.query.to_string());
    set("REMOTE_ADDR", input.remote.ip().to_string());
    set("REMOTE_HOST", input.remote.ip().to_string());
    set("REMOTE_PORT", input.remote.port().to_string());
    set("REQUEST_METHOD", input.method.to_string());
    set("REQUEST_URI", input.request_uri.to_string());
    set("SCRIPT_NAME", input.script_name.to_string());
    set(
        "SCRIPT_FILENAME",
        format!("{}{}", root.trim_end_matches('/'), input.script_name),
    );
    set("DOCUMENT_ROOT", root.to_string());
    let server_name = input
        .host
        .map(str::to_string)
        .unwrap_or_else(|| input.local.ip().to_string());
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", input.local.port().to_string());
    set(
        "SERVER_PROTOCOL",
        match (input.http2, input.http10) {
            (true, _) => "HTTP/2.0",
            (false, true) => "HTTP/1.0",
            (false, false) => "HTTP/1.1",
        }
        .into(),
    );
    set("SERVER_SOFTWARE", SERVER_NAME.into());
    // As Apache and lighttpd set them.
    set(
        "REQUEST_SCHEME",
        if input.https { "https" } else { "http" }.into(),
    );
    if input.https {
        set("HTTPS", "on".into());
    }
    set("PATH", SCRIPT_PATH.into());
    for (name, value) in input.headers {
        let Some(var) = header_variable(name) else {
            continue;
        };
        match env.iter_mut().find(|(k, _)| *k == var) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => env.push((var, value.clone())),
        }
    }
    env
}

/// `User-Agent` → `HTTP_USER_AGENT`; `None` for headers that are not
/// passed: Proxy (httpoxy), Authorization, the two that are already
/// CONTENT_*, and names with characters other than letters, digits and
/// `-` (so `X_Forwarded_For` cannot pose as `X-Forwarded-For`).
fn header_variable(name: &str) -> Option<String> {
    const SKIPPED: [&str; 4] = ["proxy", "authorization", "content-type", "content-length"];
    if SKIPPED.iter().any(|s| name.eq_ignore_ascii_case(s))
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let mut var = String::with_capacity(5 + name.len());
    var.push_str("HTTP_");
    var.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    Some(var)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn meta_variables() {
        let headers = vec![
            ("Host".to_string(), "example.org:8080".to_string()),
            ("User-Agent".to_string(), "t/1".to_string()),
            ("Proxy".to_string(), "http://evil/".to_string()),
            ("Authorization".to_string(), "Basic abc".to_string()),
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("X-Multi".to_string(), "a".to_string()),
            ("x-multi".to_string(), "b".to_string()),
            ("X_Sneaky".to_string(), "1".to_string()),
        ];
        let input = CgiEnvInput {
            method: "POST",
            http10: false,
            http2: false,
            script_name: "/cgi-bin/env.cgi",
            path_info: "/extra/path",
            query: "a=1",
            request_uri: "/cgi-bin/env.cgi/extra/path?a=1",
            headers: &headers,
            host: Some("example.org"),
            content_length: Some(5),
            remote: "127.0.0.1:5555".parse().expect("addr"),
            local: "127.0.0.1:8000".parse().expect("addr"),
            https: false,
            root: Path::new("/srv/www"),
        };
        let env = build_env(&input);
        assert_eq!(get(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(get(&env, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&env, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&env, "PATH_INFO"), Some("/extra/path"));
        assert_eq!(get(&env, "PATH_TRANSLATED"), Some("/srv/www/extra/path"));
        assert_eq!(
            get(&env, "SCRIPT_FILENAME"),
            Some("/srv/www/cgi-bin/env.cgi")
        );
        assert_eq!(get(&env, "SERVER_NAME"), Some("example.org"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8000"));
        assert_eq!(get(&env, "REMOTE_PORT"), Some("5555"));
        assert_eq!(get(&env, "AUTH_TYPE"), Some("Basic"));
        assert_eq!(get(&env, "HTTP_USER_AGENT"), Some("t/1"));
        assert_eq!(get(&env, "HTTP_X_MULTI"), Some("a, b"));
        assert_eq!(get(&env, "HTTP_PROXY"), None);
        assert_eq!(get(&env, "HTTP_AUTHORIZATION"), None);
        assert_eq!(get(&env, "HTTP_X_SNEAKY"), None);
        assert_eq!(get(&env, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&env, "PATH"), Some(SCRIPT_PATH));
        let no_host = build_env(&CgiEnvInput {
            host: None,
            ..input
        });
        assert_eq!(get(&no_host, "SERVER_NAME"), Some("127.0.0.1"));
    }
}
