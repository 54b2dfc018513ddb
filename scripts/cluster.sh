#!/usr/bin/env bash
# The main job, scaled out: two name servers and two broker groups (a master and a slave
# each) on 127.0.0.1, the load generator routed through the name servers, and a report in
# report-cluster/ (report.md, latency.svg, latency.png; one .hgrm and .json for the total
# and one per group).
#
#   scripts/cluster.sh                      # defaults: 10,000 msgs/s of 1 KiB for 15 s
#   scripts/cluster.sh --rate 20000 --secs 30 --role SYNC_MASTER --pin
#
# Everything runs in a fresh temporary directory and is always stopped on exit, also when
# interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=10000
SECS=15
WARMUP=2
SIZE=1024
CONNECTIONS=4
INFLIGHT=1024
QUEUES=8
ROLE=ASYNC_MASTER
OUT=report-cluster
PIN=0
usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  echo "flags: --rate N --secs N --warmup N --size N --connections N --inflight N --queues N --role ASYNC_MASTER|SYNC_MASTER --out DIR --pin"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --inflight) INFLIGHT=$2; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --role) ROLE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -n "${RINGMQ_BIN:-}" ]; then
  BIN=$RINGMQ_BIN # a binary built elsewhere (e.g. target/debug/ringmq for a quick check)
else
  echo "== building (release)"
  cargo build --release -p ringmq-tools
  BIN=$PWD/target/release/ringmq
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-cluster.XXXXXX")
PIDS=()
cleanup() {
  # Brokers first (they unregister from the name servers), then the name servers.
  local pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted: stopping the cluster" >&2; exit 130' INT TERM

# wait_for FILE PATTERN [COUNT]: prints the first line matching PATTERN once COUNT lines match.
wait_for() {
  local file=$1 pattern=$2 count=${3:-1} i n
  for i in $(seq 1 300); do
    n=$(grep -c "$pattern" "$file" 2>/dev/null) || true
    if [ "${n:-0}" -ge "$count" ]; then
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

echo "== two name servers"
NS=""
for n in 1 2; do
  "$BIN" namesrv -p 0 --kv-config-path "$WORK/ns$n/kvConfig.json" >"$WORK/ns$n.out" 2>"$WORK/ns$n.log" &
  PIDS+=($!)
  addr=$(wait_for "$WORK/ns$n.out" "listening on" | sed 's/.* on //')
  echo "name server $n: $addr"
  NS="${NS:+$NS;}$addr"
done

echo "== two groups ($ROLE + SLAVE each), registering with $NS"
for g in a b; do
  dir="$WORK/broker-$g"
  mkdir -p "$dir"
  "$BIN" broker --store "$dir/master" --listen-port 0 --role "$ROLE" --flush ASYNC_FLUSH $(pin_flag) \
    --set haListenPort=0 --set brokerName="broker-$g" --set namesrvAddr="$NS" \
    >"$dir/master.out" 2>"$dir/master.log" &
  PIDS+=($!)
  addr=$(wait_for "$dir/master.out" "listening on" | sed 's/.* on //')
  ha=$(wait_for "$dir/master.out" "HA listening on" | sed 's/.* on //')
  "$BIN" broker --store "$dir/slave" --listen-port 0 --role SLAVE --broker-id 1 --flush ASYNC_FLUSH $(pin_flag) \
    --set haListenPort=0 --set brokerName="broker-$g" --set haMasterAddress="$ha" \
    --set masterRemotingAddress="$addr" --set namesrvAddr="$NS" \
    >"$dir/slave.out" 2>"$dir/slave.log" &
  PIDS+=($!)
  wait_for "$dir/slave.log" "connected to HA master" >/dev/null
  wait_for "$dir/master.log" "registered with name server" 2 >/dev/null
  wait_for "$dir/slave.log" "registered with name server" 2 >/dev/null
  echo "broker-$g: master $addr (HA $ha), slave registered"
done

echo "== load through the name servers"
mkdir -p "$OUT"
"$BIN" bench --namesrv "$NS" --topic ClusterBench --queues "$QUEUES" --rate "$RATE" \
  --duration-secs "$SECS" --warmup-secs "$WARMUP" --size "$SIZE" --connections "$CONNECTIONS" \
  --inflight "$INFLIGHT" --name cluster --out "$OUT" | tee "$WORK/bench.out"

echo "== report"
"$BIN" compare "$OUT/cluster.json" "$OUT"/cluster-broker-*.json --out "$OUT" \
  --title "Two groups ($ROLE + SLAVE) behind two name servers: $RATE msgs/s of $SIZE B, total and per group"
{
  printf '\nPer group (the load generator sends each connection to one group, round-robin over its queues):\n\n'
  grep '^group ' "$WORK/bench.out" | sed 's/^/- /'
  printf '\nName servers: %s. Each broker registered with both at start.\n' "$NS"
} >>"$OUT/report.md"
echo "report written to $OUT/ (report.md, latency.svg, latency.png)"
