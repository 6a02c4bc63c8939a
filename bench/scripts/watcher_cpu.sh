#!/bin/bash
# CPU a host spends after every file of its plugins folder is rewritten (as `make destinations` does).
# Reproduces BENCHMARKS.md "The plugin watcher after make destinations": run it with an old and a new binary.
BIN=${1:?usage: watcher_cpu.sh SWITCHYARD_BINARY PORT}; PORT=${2:?port}
SRC=$(cd "$(dirname "$0")/../.." && pwd)/target/destinations
d=$(mktemp -d); mkdir -p $d/plugins; cp $SRC/*.wasm $d/plugins/
cat > $d/c.toml <<EOC
[server]
listen = "127.0.0.1:$PORT"
admin_token = "0123456789abcdef0123"
[store]
path = "$d/data"
[plugins]
dir = "$d/plugins"
[[sources]]
name = "web"
write_key = "wk"
[[destinations]]
name = "hooks"
plugin = "webhook"
allowed_hosts = ["http://127.0.0.1:9999"]
settings = { url = "http://127.0.0.1:9999/hook", secret = "s3cret" }
EOC
$BIN run --config $d/c.toml > $d/log 2>&1 &
PID=$!
for i in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
sleep 3
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
c0=$(cpu); t0=$(date +%s.%N)
for f in $SRC/*.wasm; do cp "$f" $d/plugins/.tmp.$$ && mv $d/plugins/.tmp.$$ $d/plugins/$(basename $f); done
# until 5 s pass with no CPU (at most 180 s)
last=$c0; idle=0
for i in $(seq 1 180); do sleep 1; c=$(cpu); if [ "$c" = "$last" ]; then idle=$((idle+1)); else idle=0; fi; last=$c; [ $idle -ge 5 ] && break; done
c1=$(cpu); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "$BIN: CPU after the rewrite: $(echo "scale=2; ($c1-$c0)/$hz" | bc) s over $(echo "$t1-$t0" | bc | cut -c1-5) s wall; compiled cache $(du -sh $d/data/compiled 2>/dev/null | cut -f1)"
grep -c "not compiled\|no destination uses it yet" $d/log
kill $PID; wait $PID 2>/dev/null; rm -rf $d
