#!/usr/bin/env bash
# The relay's scenarios on each engine, one after another in one run: the
# embedded SQLite, PostgreSQL with one relay instance, and PostgreSQL with two
# instances sharing the database (the load spread over both). Every relay is the
# release binary as a child process; PostgreSQL is the server ATTUNE_BENCH_PG
# names (eval "$(.ci/postgres start /tmp/attune-pg)"; ATTUNE_BENCH_PG="$ATTUNE_TEST_POSTGRES").
#   cargo build --release -p attune-relay -p attune-bench
#   ATTUNE_BENCH_PG=postgres://attune@127.0.0.1:PORT/postgres crates/bench/engines.sh [OUT_DIR] [bench flags…]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${CARGO_TARGET_DIR:-target}/release/attune-bench"
pg="${ATTUNE_BENCH_PG:?set ATTUNE_BENCH_PG to a PostgreSQL admin URL (see the comment at the top)}"
out="${1:-/tmp/attune-engines}"
shift || true
mkdir -p "$out"
common=(--spawn --scenarios single,batch,pull,streams --duration 5 --warmup 1 --paced-fraction 0 "$@")
for engine in ${ENGINES:-sqlite postgres-1 postgres-2}; do
  case "$engine" in
    sqlite) extra=() ;;
    postgres-1) extra=(--pg "$pg" --instances 1) ;;
    postgres-2) extra=(--pg "$pg" --instances 2) ;;
  esac
  echo "=== $engine ==="
  "$bin" "${common[@]}" "${extra[@]}" --json "$out/$engine.json" | tee "$out/$engine.txt"
done
