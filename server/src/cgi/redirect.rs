//! Local redirects (RFC 3875 6.2.2): a script that answers with only a
//! `Location: /path` has the server serve that path instead, as a GET.
//! Like lighttpd's HANDLER_COMEBACK, the new request goes back to the
//! loop, which serves it as it would any other.

use crate::http::path::parse_target;
use crate::http::request::{Method, Request};
use crate::http::request_body::Framing;
use crate::http::script_path::split_script;

/// Local redirects followed for one request at most.
const MAX_LOCAL_REDIRECTS: u8 = 5;

/// The request a local redirect to `path` makes of `request`; `Err` with
/// the request back when the path is not valid or too many redirects
/// were followed.
pub(crate) fn redirected(request: Request, path: &str) -> Result<Box<Request>, Box<Request>> {
    let mut request = Box::new(request);
    let redirects = request.redirects + 1;
    let target = match parse_target(path) {
        Ok(target) if redirects <= MAX_LOCAL_REDIRECTS => target,
        _ => return Err(request),
    };
    let cgi = split_script(&target.key);
    request.cgi = match (cgi, request.cgi.take()) {
        (Some((script, path_info)), Some(mut parts)) => {
            parts.script = script;
            parts.path_info = path_info;
            parts.method = if request.method == Method::Head {
                "HEAD"
            } else {
                "GET"
            }
            .into();
            parts.request_uri = path.to_string();
            parts.headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("content-type")
            });
            Some(parts)
        }
        _ => None,
    };
    if request.method == Method::Other {
        request.method = Method::Get;
    }
    request.target = target;
    request.redirects = redirects;
    request.body = Framing::None;
    Ok(request)
}
