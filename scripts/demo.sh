#!/usr/bin/env bash
# The main job. Until the broker and HA land (issues 3-5), it runs the engine benchmark:
# CommitLog append throughput and flush latency beside the raw device ceiling measured
# in the same run. Flags are passed through to engine-bench (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ringmq-benches --bin engine-bench
exec ./target/release/engine-bench "$@"
