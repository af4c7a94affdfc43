//! The CGI runner: forks and runs `*.cgi` scripts for the server.
//!
//! Not implemented yet: amped does not serve CGI in this version.

fn main() {
    eprintln!("cgi-runner: CGI is not implemented yet");
    std::process::exit(2);
}
