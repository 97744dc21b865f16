#!/bin/sh
# tests/fuzz/run.sh: run each fuzzer of $BUILD/fuzz for $FUZZ_SECONDS
# seconds on a working corpus seeded from $BUILD/seeds/<name>, crashes
# into $BUILD/artifacts/, and print per target its executions and whether
# it found anything.  Exits 1 when any target crashed, leaked or broke an
# invariant.  FUZZ_JOBS targets run at once (default 1).
set -u
BUILD=${BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
mkdir -p "$BUILD/artifacts" "$BUILD/corpus" "$BUILD/logs"

run_one() {
	n=$1
	mkdir -p "$BUILD/corpus/$n"
	"$BUILD/fuzz/$n" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
	    -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
	    -artifact_prefix="$BUILD/artifacts/$n-" \
	    "$BUILD/corpus/$n" "$BUILD/seeds/$n" >"$BUILD/logs/$n.log" 2>&1
	echo $? >"$BUILD/logs/$n.rc"
}

names=""
for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	names="$names $(basename "$f")"
done
if [ -z "$names" ]; then
	echo "no fuzzers in $BUILD/fuzz (make fuzz-build)" >&2
	exit 1
fi

running=0
for n in $names; do
	run_one "$n" &
	running=$((running + 1))
	if [ "$running" -ge "$FUZZ_JOBS" ]; then
		wait
		running=0
	fi
done
wait

rc=0
for n in $names; do
	log=$BUILD/logs/$n.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -1 |
	    sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	found=$(ls "$BUILD/artifacts" 2>/dev/null | grep "^$n-" || true)
	if [ "$(cat "$BUILD/logs/$n.rc")" != 0 ] || [ -n "$found" ]; then
		printf '%-16s %10s execs  cov %-5s FOUND: %s\n' "$n" \
		    "${execs:-?}" "${cov:-?}" "$(echo $found)"
		grep -E 'ERROR: |invariant broken|SUMMARY' "$log" | head -5
		# the input itself, so that a CI log is enough to replay it
		for a in $found; do
			echo "$a (base64; replay: base64 -d >f; $BUILD/fuzz/$n f):"
			head -c 4096 "$BUILD/artifacts/$a" | base64
		done
		rc=1
	else
		printf '%-16s %10s execs  cov %-5s nothing found\n' "$n" \
		    "${execs:-?}" "${cov:-?}"
	fi
done
exit $rc
