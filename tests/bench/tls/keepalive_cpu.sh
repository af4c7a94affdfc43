#!/bin/bash
# keepalive_cpu.sh BINDIR CERT KEY: the server's CPU per 1 KiB keep-alive
# HTTPS request: 200000 requests from keepalive_client.py (one connection,
# 16 pipelined), server on CPU 0 and client on CPU 1, CPU time in ns from
# /proc/PID/schedstat. Run it for two builds in alternating rounds.
set -euo pipefail
bin=$1 cert=$2 key=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
mkdir "$work/www" && head -c 1024 /dev/urandom > "$work/www/1k.bin"
taskset -c 0 "$bin/server" --root "$work/www" --listen-tls 127.0.0.1:0 --tls-cert "$cert" \
    --tls-key "$key" --access-log off --keepalive-requests 1000000 > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 100); do grep -q https "$work/out" && break; sleep 0.1; done
port=$(sed 's/.*https:\/\/127.0.0.1:\([0-9]*\).*/\1/' "$work/out")
taskset -c 1 python3 "$here/keepalive_client.py" "$port" 2000 "$cert" > /dev/null
t0=$(awk '{print $1}' /proc/$pid/schedstat)
taskset -c 1 python3 "$here/keepalive_client.py" "$port" 200000 "$cert" > /dev/null
t1=$(awk '{print $1}' /proc/$pid/schedstat)
echo "$bin ns_per_request=$(( (t1 - t0) / 200000 ))"
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$work"
