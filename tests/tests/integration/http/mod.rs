//! HTTP/1.1 itself: requests and their heads, paths, hosts, ranges, conditions, keep-alive, timeouts, clients that reset, and a real client (curl).

mod client_resets;
mod conditional;
mod curl;
mod half_close;
mod headers;
mod host;
mod https;
mod https_bad_input;
mod https_certificates;
mod https_clients;
mod https_redirect;
mod https_same_bytes;
mod keepalive_limits;
mod paths;
mod pipelined_after_refusal;
mod ranges;
mod requests;
mod timeouts;
