#!/usr/bin/env bash
# The main job: a local master+slave pair on 127.0.0.1 under the load generator, the same
# load against SYNC_MASTER then ASYNC_MASTER, and a comparison report in report/
# (report.md, latency.svg, latency.png, one .hgrm and one .json per run).
#
#   scripts/demo.sh                      # defaults: 10,000 msgs/s of 1 KiB for 15 s per run
#   scripts/demo.sh --rate 20000 --secs 60 --size 4096 --flush-matrix --pin
#
# Brokers run in a fresh temporary directory and are always stopped on exit, also when
# interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=10000
SECS=15
WARMUP=2
SIZE=1024
CONNECTIONS=4
INFLIGHT=1024
OUT=report
PIN=0
MATRIX=0
usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  echo "flags: --rate N --secs N --warmup N --size N --connections N --inflight N --out DIR --pin --flush-matrix"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --inflight) INFLIGHT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    --flush-matrix) MATRIX=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
done

echo "== building (release)"
cargo build --release -p ringmq-tools
BIN=$PWD/target/release/ringmq

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-demo.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted: stopping brokers" >&2; exit 130' INT TERM

# wait_for FILE PATTERN: prints the first line matching PATTERN once it appears.
wait_for() {
  local file=$1 pattern=$2 i
  for i in $(seq 1 300); do
    if grep -q "$pattern" "$file" 2>/dev/null; then
      grep -m1 "$pattern" "$file"
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for '$pattern' in $file" >&2
  cat "$file" >&2 || true
  return 1
}

pin_flag() { if [ "$PIN" = 1 ]; then echo ""; else echo "--no-pin"; fi; }

# run_pair NAME ROLE FLUSH: starts master+slave, runs the load, stops both.
run_pair() {
  local name=$1 role=$2 flush=$3 dir="$WORK/$1"
  mkdir -p "$dir"
  echo "== $name: master ($role, $flush) + slave"
  "$BIN" broker --store "$dir/master" --listen-port 0 --role "$role" --flush "$flush" $(pin_flag) \
    --set haListenPort=0 --set brokerName=demo >"$dir/master.out" 2>"$dir/master.log" &
  PIDS+=($!)
  local addr ha
  addr=$(wait_for "$dir/master.out" "listening on" | sed 's/.* on //')
  ha=$(wait_for "$dir/master.out" "HA listening on" | sed 's/.* on //')
  "$BIN" broker --store "$dir/slave" --listen-port 0 --role SLAVE --broker-id 1 --flush "$flush" $(pin_flag) \
    --set haListenPort=0 --set brokerName=demo --set haMasterAddress="$ha" --set masterRemotingAddress="$addr" \
    >"$dir/slave.out" 2>"$dir/slave.log" &
  PIDS+=($!)
  wait_for "$dir/slave.out" "listening on" >/dev/null
  wait_for "$dir/slave.log" "connected to HA master" >/dev/null
  "$BIN" bench --addr "$addr" --rate "$RATE" --duration-secs "$SECS" --warmup-secs "$WARMUP" \
    --size "$SIZE" --connections "$CONNECTIONS" --inflight "$INFLIGHT" --name "$name" --out "$OUT"
  cleanup_pair
}

cleanup_pair() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

mkdir -p "$OUT"
RUNS=()
run_pair SYNC_MASTER SYNC_MASTER ASYNC_FLUSH; RUNS+=("$OUT/SYNC_MASTER.json")
run_pair ASYNC_MASTER ASYNC_MASTER ASYNC_FLUSH; RUNS+=("$OUT/ASYNC_MASTER.json")
if [ "$MATRIX" = 1 ]; then
  run_pair SYNC_MASTER-SYNC_FLUSH SYNC_MASTER SYNC_FLUSH; RUNS+=("$OUT/SYNC_MASTER-SYNC_FLUSH.json")
  run_pair ASYNC_MASTER-SYNC_FLUSH ASYNC_MASTER SYNC_FLUSH; RUNS+=("$OUT/ASYNC_MASTER-SYNC_FLUSH.json")
fi

echo "== report"
"$BIN" compare "${RUNS[@]}" --out "$OUT" --title "SYNC_MASTER vs ASYNC_MASTER: $RATE msgs/s of $SIZE B, master+slave"
# The generator's own ceiling (closed loop against an in-process fake broker), so the
# report says how far from its limit the offered load was.
"$BIN" bench --self-test --duration-secs 3 --warmup-secs 1 --size "$SIZE" --connections "$CONNECTIONS" --inflight "$INFLIGHT" --name generator-ceiling --out "$WORK/gen" -q >/dev/null 2>&1 || true
CEILING=$(sed -n 's/.*"throughput_msgs_per_s": *\([0-9.]*\).*/\1/p' "$WORK/gen/generator-ceiling.json" 2>/dev/null | cut -d. -f1)
if [ -n "$CEILING" ]; then
  printf '\nLoad generator ceiling on this machine (closed loop against an in-process fake broker, 1 KiB): %s msgs/s; offered here: %s msgs/s.\n' "$CEILING" "$RATE" >>"$OUT/report.md"
  echo "load generator ceiling: $CEILING msgs/s (offered $RATE)"
fi
echo "report written to $OUT/ (report.md, latency.svg, latency.png)"
