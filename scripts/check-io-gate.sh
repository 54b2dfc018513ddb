#!/usr/bin/env bash
# Fails if any engine module outside engine/src/io/ touches files other than through the
# I/O gate (engine/src/io/gate.rs): std::fs, File, OpenOptions, FileExt, raw fds, or libc
# file syscalls. Unit-test modules (from the first `#[cfg(test)]` line of a file on) may
# inspect files directly and are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

pattern='std::fs|\bfs::|\bFile::|\bOpenOptions\b|\bFileExt\b|\bOpenOptionsExt\b|AsRawFd|from_raw_fd|libc::(open|openat|close|pread|pwrite|preadv|pwritev|read|write|fsync|fdatasync|fallocate|ftruncate|truncate|unlink|unlinkat|rename|renameat|link|flock|lseek|mmap|msync|sync_file_range|mkdir)\b'

found=0
while IFS= read -r f; do
    hits=$(awk '/^[[:space:]]*#\[cfg\(test\)\]/ { exit } { print FILENAME ":" FNR ": " $0 }' "$f" \
        | grep -E "$pattern" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
    if [ -n "$hits" ]; then
        echo "$hits"
        found=1
    fi
done < <(find engine/src -name '*.rs' -not -path 'engine/src/io/*' | sort)

if [ "$found" -ne 0 ]; then
    echo "check-io-gate: file access outside the I/O gate (use crate::io::gate)" >&2
    exit 1
fi
echo "check-io-gate: every engine file operation outside engine/src/io/ goes through the gate"
