#!/bin/sh
# tests/bench/run.sh: run every benchmark program in $BUILD/bench/ and
# every tests/bench/*.sh script but this one, printing their output.
# Exits 1 when any of them fails.
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
export BUILD TOP="$top"

rc=0
for p in "$BUILD"/bench/*; do
	[ -f "$p" ] && [ -x "$p" ] || continue
	echo "== $(basename "$p")"
	"$p" || { echo "$(basename "$p"): failed"; rc=1; }
done
for s in tests/bench/*.sh; do
	[ -f "$s" ] || continue
	[ "$(basename "$s")" = run.sh ] && continue
	echo "== $(basename "$s")"
	sh "$s" || { echo "$(basename "$s"): failed"; rc=1; }
done
exit $rc
