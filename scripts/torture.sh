#!/usr/bin/env bash
# Torture (not in CI): a broker under load killed with SIGKILL at random moments, N rounds
# per flush mode, each restart recovering the same store; then every acknowledged message
# (by the load's send log) must be there.
#
#   scripts/torture.sh                 # 5 kills per mode, SYNC_FLUSH then ASYNC_FLUSH
#   scripts/torture.sh --kills 100 --min-ms 200 --max-ms 3000
#
# Prints one line per mode: `<mode> kills=<n> acked=<n> missing=<n>`. Exits 1 if any
# acknowledged message is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=5
MIN_MS=300
MAX_MS=2500
MODES="SYNC_FLUSH ASYNC_FLUSH"
THREADS=4
KEEP=0
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; echo "flags: --kills N --min-ms N --max-ms N --modes 'SYNC_FLUSH ASYNC_FLUSH' --threads N --keep"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) KILLS=$2; shift 2 ;;
    --min-ms) MIN_MS=$2; shift 2 ;;
    --max-ms) MAX_MS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
done

echo "== building (release)" >&2
cargo build --release -p ringmq-tools -p ringmq-benches --bin ringmq --bin torture-client >&2
BIN=$PWD/target/release/ringmq
CLIENT=$PWD/target/release/torture-client

# The store must be on a file system with O_DIRECT (not tmpfs): keep it under target/.
WORK=$(mktemp -d "$PWD/target/torture.XXXXXX")
BROKER=""
LOAD=""
cleanup() {
  # Only the processes this script started, by pid.
  [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null || true
  [ -n "$BROKER" ] && kill -TERM "$BROKER" 2>/dev/null || true
  [ -n "$LOAD" ] && wait "$LOAD" 2>/dev/null || true
  [ -n "$BROKER" ] && wait "$BROKER" 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# start_broker DIR FLUSH: starts a broker on DIR/store, sets BROKER and ADDR.
start_broker() {
  local dir=$1 flush=$2 i
  : >"$dir/broker.out"
  "$BIN" broker --store "$dir/store" --listen-port 0 --role ASYNC_MASTER --flush "$flush" --no-pin \
    --set brokerName=torture >>"$dir/broker.out" 2>>"$dir/broker.log" &
  BROKER=$!
  for i in $(seq 1 600); do
    if grep -q "listening on" "$dir/broker.out" 2>/dev/null; then
      ADDR=$(grep -m1 "listening on" "$dir/broker.out" | sed 's/.* on //')
      return 0
    fi
    if ! kill -0 "$BROKER" 2>/dev/null; then
      echo "broker exited at start-up:" >&2; tail -20 "$dir/broker.log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "broker did not start" >&2; tail -20 "$dir/broker.log" >&2; exit 1
}

FAILED=0
for mode in $MODES; do
  dir="$WORK/$mode"
  mkdir -p "$dir"
  log="$dir/send.log"
  kills=0
  for round in $(seq 1 "$KILLS"); do
    start_broker "$dir" "$mode"
    "$CLIENT" produce --addr "$ADDR" --tag "r$round" --log "$log" --threads "$THREADS" \
      >"$dir/load-$round.out" 2>>"$dir/load.log" &
    LOAD=$!
    sleep "$(awk -v a="$MIN_MS" -v b="$MAX_MS" -v r="$RANDOM" 'BEGIN { printf "%.3f", (a + (b - a) * r / 32767) / 1000 }')"
    kill -KILL "$BROKER"
    wait "$BROKER" 2>/dev/null || true
    BROKER=""
    kills=$((kills + 1))
    wait "$LOAD" 2>/dev/null || true
    LOAD=""
    echo "$mode round $round: killed; $(cat "$dir/load-$round.out" 2>/dev/null)" >&2
  done
  start_broker "$dir" "$mode"
  set +e
  result=$("$CLIENT" verify --addr "$ADDR" --log "$log")
  rc=$?
  set -e
  kill -TERM "$BROKER" 2>/dev/null || true
  wait "$BROKER" 2>/dev/null || true
  BROKER=""
  echo "$result" | sed -n '2,11p' >&2
  acked=$(echo "$result" | sed -n '1s/.* acked=\([0-9]*\).*/\1/p')
  missing=$(echo "$result" | sed -n '1s/.* missing=\([0-9]*\).*/\1/p')
  echo "$mode kills=$kills acked=${acked:-?} missing=${missing:-?}"
  if [ "$rc" != 0 ]; then FAILED=1; fi
done
exit "$FAILED"
