#!/usr/bin/env bash
# Before and after, in one run: builds the gateway at each commit given (in a worktree of its
# own, so the checkout is untouched) and runs the benchmark against each build in turn, each
# with its own commit's config/ and schemas/ (a region file of one commit may not load in
# another's binary).
#   scripts/bench-compare.sh COMMIT... [-- benchmark options]
# e.g. scripts/bench-compare.sh 6cb677d fd50cce ea3420d HEAD -- --broker embedded --seconds 10
set -euo pipefail
cd "$(dirname "$0")/.."
commits=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do commits+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
WORK="${BENCH_COMPARE_DIR:-$PWD/target/bench-compare}"
mkdir -p "$WORK/bin"
for c in "${commits[@]}"; do
  sha="$(git rev-parse --short "$c")"
  if [ ! -x "$WORK/bin/$sha" ]; then
    echo "== building $sha"
    rm -rf "$WORK/tree"; git worktree prune
    git worktree add -q --detach "$WORK/tree" "$sha"
    (cd "$WORK/tree" && CARGO_TARGET_DIR="$WORK/target" cargo build -q --release --locked --bin ventanilla)
    cp "$WORK/target/release/ventanilla" "$WORK/bin/$sha"
    git worktree remove --force "$WORK/tree"
  fi
  if [ ! -d "$WORK/config/$sha/config" ]; then
    mkdir -p "$WORK/config/$sha"
    git archive "$sha" config schemas | tar -x -C "$WORK/config/$sha"
  fi
done
cargo bench -q --bench gateway --no-run
for c in "${commits[@]}"; do
  sha="$(git rev-parse --short "$c")"
  echo; echo "#################### $sha: $(git log -1 --format=%s "$sha" | cut -c1-100)"
  VENTANILLA_BENCH_BINARY="$WORK/bin/$sha" VENTANILLA_BENCH_CONFIG="$WORK/config/$sha/config" cargo bench -q --bench gateway -- "$@"
done
