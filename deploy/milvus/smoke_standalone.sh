#!/usr/bin/env bash
# Smoke test of xsearch against the real Milvus standalone server (PyPI `milvus`, 2.3.5: the
# Milvus binary with its embedded etcd and local storage). Each step runs an xsearch command on
# a `milvus://` location and checks its answer against the same command on a directory index
# of the same photos: index, status, text query, folder filter, image query, texts, re-index,
# a deletion, a search at bounded consistency; `dupes` must be refused by name.
#
#   deploy/milvus/smoke_standalone.sh [XSEARCH_BINARY]
#
# Milvus 2.3.5 listens on every interface (the proxy, its metrics and its internal gRPC ports)
# and has no setting to bind loopback only, so the script runs itself inside a private network
# namespace, where only loopback exists and nothing outside can reach the server, and a private
# process namespace of which it is the first process (`unshare -rnpf`, no root needed): the
# launcher's `milvus` child outlives a kill of its parent, but not the end of the namespace, so
# nothing is left running however the script ends. It makes its own virtual environment and
# data under target/milvus-smoke. Needs python3 (with venv), PyPI and util-linux's
# unshare. Exit status: 0 when every step passed, 1 otherwise (each failure printed).
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${XSEARCH_SMOKE_NETNS:-}" ]; then
    work=$PWD/target/milvus-smoke
    mkdir -p "$work"
    # The environment is made outside the namespace: PyPI is out of its reach.
    [ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv" || exit 1
    "$work/venv/bin/pip" install -q --disable-pip-version-check milvus==2.3.5 || exit 1
    XSEARCH_SMOKE_NETNS=1 exec unshare -rnpf --mount-proc "$0" "$@"
fi

ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null || true
xsearch=${1:-}
if [ -z "$xsearch" ]; then
    xsearch=target/release/xsearch
    [ -x "$xsearch" ] || xsearch=target/debug/xsearch
fi
xsearch=$(realpath "$xsearch")
work=$PWD/target/milvus-smoke
export XSEARCH_MODEL=$PWD/fixtures/models/shapes-tiny
port=19530
rm -rf "$work/data" "$work/dir-index" "$work/photos"

# milvus 2.3.5's launcher runs the standalone binary with its embedded etcd; the proxy (the
# gRPC API) listens on the port given.
"$work/venv/bin/python" - "$work/data" "$port" >"$work/server.log" 2>&1 <<'PY' &
import sys, time
from milvus import MilvusServer
server = MilvusServer()
server.set_base_dir(sys.argv[1])
server.listen_port = int(sys.argv[2])
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
for _ in $(seq 1 180); do
    grep -q listening "$work/server.log" && break
    kill -0 "$server" 2>/dev/null || { echo "milvus standalone did not start:"; cat "$work/server.log"; exit 1; }
    sleep 1
done
grep -q listening "$work/server.log" || { echo "milvus standalone did not start in 180 s"; exit 1; }
echo "milvus $("$work/venv/bin/pip" show milvus | sed -n 's/^Version: //p') standalone on 127.0.0.1:$port (private network namespace)"

photos=$work/photos
cargo run -q -p xsearch-shapes -- "$photos" 24 --seed 7 2>/dev/null
milvus=milvus://127.0.0.1:$port/smoke
dir=$work/dir-index
failed=0

# `same NAME ARGS...`: runs `xsearch ARGS` on both indexes; passes when both succeed with the
# same, non-empty stdout (scores to 4 places, as the text output prints them; run times left out).
same() {
    local name=$1; shift
    local a b
    if ! a=$("$xsearch" --index "$milvus" -q "$@" 2>&1 | seconds_out); then
        echo "FAIL  $name: milvus: $(echo "$a" | head -3)"; failed=1; return
    fi
    if ! b=$("$xsearch" --index "$dir" -q "$@" 2>&1 | seconds_out); then
        echo "FAIL  $name: directory: $(echo "$b" | head -3)"; failed=1; return
    fi
    if [ -z "$a" ]; then
        echo "FAIL  $name: no answer"; failed=1
    elif [ "$a" == "$b" ]; then
        echo "ok    $name: $(echo "$a" | head -1 | cut -c1-90)"
    else
        echo "FAIL  $name: answers differ"; diff <(echo "$b") <(echo "$a") | head -10; failed=1
    fi
}

# `both NAME ARGS...`: runs `xsearch ARGS` on both indexes; passes when both succeed (for
# commands that print nothing on stdout).
both() {
    local name=$1 out; shift
    for index in "$milvus" "$dir"; do
        if ! out=$("$xsearch" --index "$index" -q "$@" 2>&1); then
            echo "FAIL  $name: $index: $(echo "$out" | head -3)"; failed=1; return
        fi
    done
    echo "ok    $name"
}

seconds_out() { sed -E 's/,?"seconds":[0-9.e+-]+//'; }

# `count NAME FIELD VALUE`: `xsearch status --json` on Milvus has FIELD = VALUE.
count() {
    local got
    got=$("$xsearch" --index "$milvus" status --json 2>&1 | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['$2'])" 2>&1)
    if [ "$got" == "$3" ]; then echo "ok    $1"; else echo "FAIL  $1: $2 = $got, not $3"; failed=1; fi
}

same "index"                 index --json "$photos"
count "status: 24 images"    images 24
same "query"                 query -k 5 "a red circle"
same "query --in"            query -k 5 --in "$photos" "a blue square"
same "image query"           query -k 5 --image "$(ls "$photos"/*.png "$photos"/*.jpg 2>/dev/null | head -1)"
printf 'a red circle\na green triangle\na blue square\n' >"$work/labels.txt"
both "texts add"             texts add "$work/labels.txt"
count "status: 3 texts"      texts 3
same "query --texts"         query -k 2 --texts --image "$(ls "$photos"/*.png "$photos"/*.jpg 2>/dev/null | head -1)"
same "re-index, unchanged"   index --json "$photos"
rm -f "$(ls "$photos"/*.png "$photos"/*.jpg 2>/dev/null | tail -1)"
same "re-index, a deletion"  index --json "$photos"
count "status: 23 images"    images 23
# Bounded searches may miss writes newer than Milvus's graceful time (5 s): wait it out.
sleep 6
milvus="$milvus?consistency=bounded"
same "query, bounded"        query -k 5 "a red circle"
if out=$("$xsearch" --index "$milvus" dupes 2>&1); then
    echo "FAIL  dupes: accepted on Milvus"; failed=1
elif echo "$out" | grep -q "not available with a Milvus index"; then
    echo "ok    dupes refused"
else
    echo "FAIL  dupes: $out"; failed=1
fi
exit $failed
