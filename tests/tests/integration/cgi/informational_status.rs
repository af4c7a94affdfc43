//! A script answering `Status: 100` (a 1xx), under each event backend,
//! gets 502: a script cannot send an interim response.

use tests::cgi::CgiSite;
use tests::{per_backend, ServerProcess};

fn script_answering_1xx_gets_502(backend: &str) {
    let site = CgiSite::new("status-1xx");
    site.script(
        "cgi-bin/continue.cgi",
        "printf 'Status: 100 Continue\\r\\nContent-Type: text/plain\\r\\n\\r\\nbody\\n'\n",
    );
    site.script(
        "cgi-bin/early.cgi",
        "printf 'Status: 103 Early Hints\\r\\n\\r\\n'\n",
    );
    let server = ServerProcess::serve(site.root(), backend);
    for script in ["/cgi-bin/continue.cgi", "/cgi-bin/early.cgi"] {
        let response = server.connect().get_dechunked(script);
        response.assert_error_page(502);
    }
}

per_backend!(script_answering_1xx_gets_502);
