#!/bin/sh
# A form that POSTs to itself; the POST echoes back what was sent.
escape() {
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
}
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
printf '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>amped form</title></head><body>\n'
if [ "$REQUEST_METHOD" = "POST" ]; then
    printf '<h1>You sent</h1>\n<pre>'
    head -c "${CONTENT_LENGTH:-0}" | escape
    printf '</pre>\n<p><a href="%s">Again</a></p>\n' "$SCRIPT_NAME"
else
    printf '<h1>Say something</h1>\n'
    printf '<form method="post" action="%s">\n' "$SCRIPT_NAME"
    printf '<input name="message" value="hello"> <button>Send</button>\n</form>\n'
fi
printf '</body></html>\n'
