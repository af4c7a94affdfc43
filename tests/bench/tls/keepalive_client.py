# One keep-alive TLS connection: N requests of GET /1k.bin, 16 pipelined at a time
# (used by keepalive_cpu.sh). Arguments: PORT N CA_FILE.
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile=sys.argv[3])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
req = b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
buf = b""; done = 0
while done < n:
    k = min(16, n - done)
    s.sendall(req * k)
    got = 0
    while got < k:
        i = buf.find(b"\r\n\r\n")
        if i >= 0 and len(buf) >= i + 4 + 1024:
            buf = buf[i + 4 + 1024:]; got += 1; continue
        more = s.recv(65536)
        if not more: sys.exit("closed by the server")
        buf += more
    done += k
print("ok", done)
