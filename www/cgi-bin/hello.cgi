#!/bin/sh
# The smallest CGI script: a header block, a blank line, the body.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello from a CGI script run by amped.\n'
