#!/usr/bin/env bash
# Smoke test of xsearch against the real Milvus standalone server (PyPI `milvus`, 2.3.5: the
# Milvus binary with its embedded etcd and local storage), on 127.0.0.1 only. It says, step by
# step, what works: `xsearch index`, `status`, `query`, a folder filter, texts.
#
#   deploy/milvus/smoke_standalone.sh [XSEARCH_BINARY]
#
# Needs python3 (with venv) and PyPI; makes its own virtual environment and data under
# target/milvus-smoke, and stops the server by pid when it ends. Exit status: 0 when every step
# passed, 1 otherwise (each failure is printed).
set -uo pipefail
cd "$(dirname "$0")/../.."
xsearch=${1:-target/release/xsearch}
work=$PWD/target/milvus-smoke
model=$PWD/fixtures/models/shapes-tiny
mkdir -p "$work"

[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check milvus==2.3.5

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$work/data"
# milvus 2.3.5's launcher runs the standalone binary with its embedded etcd on loopback; the
# proxy (the gRPC API) listens on the port given.
"$work/venv/bin/python" - "$work/data" "$port" >"$work/server.log" 2>&1 <<'PY' &
import sys, time
from milvus import MilvusServer
server = MilvusServer()
server.set_base_dir(sys.argv[1])
server.listen_port = int(sys.argv[2])
# Every component registers and dials 127.0.0.1, never the machine's other addresses.
for role in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
             "dataCoord", "dataNode"):
    server.config.set(role + ".ip", "127.0.0.1")
server.start()
print("listening", flush=True)
while True:
    time.sleep(3600)
PY
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
for _ in $(seq 1 120); do
    grep -q listening "$work/server.log" && break
    kill -0 "$server" 2>/dev/null || { echo "milvus standalone did not start:"; cat "$work/server.log"; exit 1; }
    sleep 1
done

url="milvus://127.0.0.1:$port/smoke"
photos=$work/photos
rm -rf "$photos"
cargo run -q -p xsearch-shapes -- "$photos" 24 --seed 7 >/dev/null
failed=0
step() {
    local name=$1; shift
    if out=$("$@" 2>&1); then
        echo "ok    $name"
    else
        echo "FAIL  $name: $(echo "$out" | head -3)"
        failed=1
    fi
}
step "index"  "$xsearch" --index "$url" --model "$model" -q index "$photos"
step "status" "$xsearch" --index "$url" status
step "query"  "$xsearch" --index "$url" query -k 3 "a red circle"
step "query --in" "$xsearch" --index "$url" query -k 3 --in "$photos" "a blue square"
step "re-index (unchanged)" "$xsearch" --index "$url" -q index "$photos"
exit $failed
