#!/bin/sh
# The CGI workload's script (tests/bench/h2/run.sh): a header block, a
# blank line, the body; the same for every server.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello from a CGI script.\n'
