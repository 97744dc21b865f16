#!/bin/sh
# tests/run.sh [unit|integration|all]: run the tests of $BUILD and end with
# one line "N passed, N failed" summed over every test program.  Exits 1
# on any failure.  With SANITIZE=1 a sanitizer report from any process
# (daemons included) fails the run too.
set -u
BUILD=${BUILD:-build}
what=${1:-all}
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/reach.sh"
if [ -z "${RESULTS:-}" ]; then
	R=$(reach_dir "$top/$BUILD/results" results)
	[ "$R" = "$top/$BUILD/results" ] || echo "tests: $top is out of" \
	    "reach of the daemons' user nobody; results in $R"
else
	R=$RESULTS
fi
rm -rf "$R"
mkdir -p "$R"
export BUILD TOP="$top" RESULTS="$R"

if [ "${SANITIZE:-0}" = 1 ]; then
	# workers run as the conf's user: they must be able to write here
	mkdir -p "$R/san"
	chmod 1777 "$R/san"
	export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:log_path=$R/san/asan"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$R/san/ubsan"
	# a copy where the workers (nobody) can read it, as the checkout
	# may be out of their reach
	cp "$top/tests/lsan.supp" "$R/lsan.supp"
	chmod 644 "$R/lsan.supp"
	export LSAN_OPTIONS="suppressions=$R/lsan.supp:print_suppressions=0"
fi

rc=0
if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$top/$BUILD"/tests/unit/test_*; do
		[ -x "$t" ] || continue
		case $t in *.o|*.d) continue ;; esac
		n=$(basename "$t")
		"$t" --jobs=2 --json="$R/unit-$n.json" >"$R/unit-$n.log" 2>&1 ||
		    rc=1
		printf '%-28s %s\n' "$n" "$(grep -a 'Synthesis' "$R/unit-$n.log" |
		    sed 's/.*Synthesis: //')"
		grep -a -E '^\[(----|FAIL)\]' "$R/unit-$n.log" | head -40
		[ -s "$R/unit-$n.json" ] || {
			echo "$n: no report"; tail -20 "$R/unit-$n.log"; rc=1; }
	done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
	sh "$top/tests/integration/run.sh" || rc=1
fi
# A report is a file that says ERROR (ASan, LSan) or "runtime error"
# (UBSan); LSan also writes a file only to warn ("Unable to get registers
# from thread" when a process is killed while it checks for leaks): shown,
# not counted.
if [ "${SANITIZE:-0}" = 1 ] && [ -n "$(ls -A "$R/san" 2>/dev/null)" ]; then
	n=0
	for f in "$R"/san/*; do
		if grep -q -E 'ERROR: |runtime error' "$f"; then
			n=$((n + 1))
			echo "== sanitizer report $f"
			head -60 "$f"
		else
			echo "== sanitizer warning $f: $(head -3 "$f" | tr '\n' ' ')"
		fi
	done
	if [ $n -gt 0 ]; then
		printf '{"passed": 0, "failed": %d, "skipped": 0}\n' "$n" \
		    > "$R/sanitizer.json"
		rc=1
	fi
fi
python3 "$top/tests/lib/summary.py" "$R"/*.json || rc=1
exit $rc
