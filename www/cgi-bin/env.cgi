#!/bin/sh
# Prints the environment the script was given, one VAR=value a line,
# sorted: the CGI meta-variables and the HTTP_* request headers.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
env | LC_ALL=C sort
