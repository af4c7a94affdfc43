//! The status codes amped answers with.

/// An HTTP status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

macro_rules! statuses {
    ($($name:ident = $code:expr, $reason:expr;)*) => {
        impl Status { $(pub(crate) const $name: Status = Status { code: $code, reason: $reason };)* }
    };
}

statuses! {
    OK = 200, "OK";
    PARTIAL_CONTENT = 206, "Partial Content";
    MOVED_PERMANENTLY = 301, "Moved Permanently";
    PERMANENT_REDIRECT = 308, "Permanent Redirect";
    NOT_MODIFIED = 304, "Not Modified";
    BAD_REQUEST = 400, "Bad Request";
    FORBIDDEN = 403, "Forbidden";
    NOT_FOUND = 404, "Not Found";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed";
    REQUEST_TIMEOUT = 408, "Request Timeout";
    PRECONDITION_FAILED = 412, "Precondition Failed";
    PAYLOAD_TOO_LARGE = 413, "Content Too Large";
    URI_TOO_LONG = 414, "URI Too Long";
    RANGE_NOT_SATISFIABLE = 416, "Range Not Satisfiable";
    HEADERS_TOO_LARGE = 431, "Request Header Fields Too Large";
    INTERNAL_ERROR = 500, "Internal Server Error";
    NOT_IMPLEMENTED = 501, "Not Implemented";
    BAD_GATEWAY = 502, "Bad Gateway";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable";
    GATEWAY_TIMEOUT = 504, "Gateway Timeout";
    VERSION_NOT_SUPPORTED = 505, "HTTP Version Not Supported";
}
