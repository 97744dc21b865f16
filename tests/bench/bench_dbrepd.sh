#!/bin/sh
# bench_dbrepd.sh: dbrepd side by side with plain SQLite, in one run
# (make bench runs it).  It starts dbrepd primaries and replicas on
# loopback, in a temporary folder, and measures with dbrepd_bench:
#
#   commits/s of plain SQLite (WAL, synchronous=FULL, one-row
#     transactions) and of a dbrepd primary, async (also with busy-poll
#     on the primary's workers, 50us, on the client library, 300us, and
#     on both) and quorum 1; then
#     from 4 and 8 writers at once (processes on plain SQLite, clients
#     of dbrepd, whose group commit shares flushes among them; also
#     with the clients busy-polling, which more clients than spare CPUs
#     should not do: the rows show what it costs)
#   the commit latency quorum 1 adds (p50, p99)
#   replication lag p50/p99 at half the primary's capacity
#   the catch-up rate of a replica far behind (DBREPD_BENCH_CATCHUP
#     records, 1000000 by default), against the primary's commit rate
#   snapshot throughput (build + transfer), and to a new replica
#     (build + transfer + check + install)
#   promotion time
#
# DBREPD_BENCH_N (3000) commits per rate and round (BENCH_ROUNDS, 3:
# every rate in turn, medians), DBREPD_BENCH_SNAPMB (128) MB of
# data for the snapshot.  The machine's speed drifts: compare the ratios
# of one run, not figures across runs.
set -eu
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
B=$top/$BUILD/bin
D=$top/$BUILD/bench-dbrepd/dbrepd_bench
N=${DBREPD_BENCH_N:-3000}
ROUNDS=${BENCH_ROUNDS:-3}
CATCHUP=${DBREPD_BENCH_CATCHUP:-1000000}
SNAPMB=${DBREPD_BENCH_SNAPMB:-128}
export DBREP_SECRET=bench-secret

if [ ! -x "$D" ] || [ ! -x "$B/dbrepd" ]; then
	echo "bench_dbrepd: build first (make bench)" >&2
	exit 1
fi
W=$(mktemp -d /tmp/dbrepd-bench.XXXXXX)
chmod 755 "$W"
R=$W/results
: > "$R"
PIDFILES=""
cleanup() {
	for f in $PIDFILES; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	sleep 0.2
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# node NAME ROLE PRIMARY-REPL-ADDR EXTRA: start a dbrepd; sets PORT_NAME
node() {
	name=$1 role=$2 primary=$3 extra=$4
	p=$(port)
	r=$(port)
	eval "PORT_$name=$p REPL_$name=127.0.0.1:$r"
	{
		echo "user $(id -un)"
		echo "name $name"
		echo "workers 2"
		echo "pidfile \"$W/$name.pid\""
		echo "data \"$W/$name.db\""
		echo "role $role"
		echo "listen unix:$W/$name.sock"
		echo "listen 127.0.0.1:$p"
		echo "replication-listen 127.0.0.1:$r"
		echo "secret \"$DBREP_SECRET\""
		[ -n "$primary" ] && echo "primary $primary"
		printf '%b\n' "$extra"
	} > "$W/$name.conf"
	"$B/dbrepd" -f "$W/$name.conf"
	PIDFILES="$PIDFILES $W/$name.pid"
	i=0
	while [ ! -S "$W/$name.sock" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

stop() {
	[ -f "$W/$1.pid" ] && kill "$(cat "$W/$1.pid")" 2>/dev/null || true
	i=0
	while [ -f "$W/$1.pid" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

kill9() {
	pid=$(cat "$W/$1.pid")
	pkill -9 -P "$pid" 2>/dev/null || true
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$W/$1.pid" "$W/$1.sock"
}

run() {
	"$D" "$@" | tee -a "$R"
}

val() {
	awk -v k="$1" '$1 == k { v = $2 } END { print v }' "$R"
}

lsn_of() {
	"$B/dbrepctl" -n "unix:$W/$1.sock" status | awk '$1 == "lsn" { print $2 }'
}

# plain SQLite, a dbrepd primary alone (async; also busy-polling on the
# node, the client, both), one with a replica streaming (async, the
# replica's writes on the same disk) and one with a replica (quorum 1) in
# turn, $ROUNDS rounds, so that the machine's drift weighs on each alike;
# the medians of each figure are kept
echo "-- one-row commits: plain SQLite, dbrepd async (alone, busy-polling" \
    "on the node, the client, both, then with a replica), dbrepd" \
    "quorum 1, then 4 and 8 writers at once (also clients busy-polling);" \
    "$ROUNDS rounds, medians"
node p1 primary "" ""
node p2 primary "" "durability quorum 1 timeout 2s"
node r2 replica "$REPL_p2" ""
node pa primary "" ""
node ra replica "$REPL_pa" ""
node pb primary "" "busy-poll 50us"
i=0
while [ $i -lt "$ROUNDS" ]; do
	"$D" plain "$W/plain.db" "$N" >> "$W/rounds"
	"$D" write "unix:$W/p1.sock" "$N" async >> "$W/rounds"
	"$D" write "unix:$W/pb.sock" "$N" asyncbp >> "$W/rounds"
	"$D" write "unix:$W/p1.sock" "$N" asynccl 300 >> "$W/rounds"
	"$D" write "unix:$W/pb.sock" "$N" asyncbpc 300 >> "$W/rounds"
	"$D" write "unix:$W/pa.sock" "$N" asyncr >> "$W/rounds"
	"$D" write "unix:$W/p2.sock" "$N" quorum >> "$W/rounds"
	for c in 4 8; do
		"$D" plain "$W/plain.db" "$N" $c >> "$W/rounds"
		"$D" fill "unix:$W/p1.sock" "$N" $c |
		    sed -n "s/^fill_rate/async${c}_rate/p" >> "$W/rounds"
		"$D" fill "unix:$W/p1.sock" "$N" $c 300 |
		    sed -n "s/^fill_rate/asynccl${c}_rate/p" >> "$W/rounds"
	done
	i=$((i + 1))
done
awk '{ v[$1] = v[$1] " " $2; if (!($1 in seen)) { seen[$1] = 1;
    order[++n] = $1 } }
    END { for (i = 1; i <= n; i++) print order[i], v[order[i]] }' \
    "$W/rounds" | while read -r k vals; do
	echo "$k $(echo "$vals" | tr ' ' '\n' | sort -g | awk '{ x[NR] = $1 }
	    END { print x[int((NR + 1) / 2)] }')"
done | tee -a "$R"

echo "-- replication lag at half the primary's capacity"
half=$(awk -v r="$(val asyncr_rate)" 'BEGIN { printf "%d", r / 2 }')
run lag "unix:$W/pa.sock" "unix:$W/ra.sock" "$half" 5
for n in ra pa pb p1 r2 p2; do
	stop $n
done

echo "-- catch-up of a replica $CATCHUP records behind"
node p3 primary "" "synchronous off\nlog-min-records 3000000\nlog-max-records 3000000\nlog-max-size 8g"
run fill "unix:$W/p3.sock" "$CATCHUP" 4
want=$(lsn_of p3)
node r3 replica "$REPL_p3" ""
run catchup "unix:$W/r3.sock" "$want" 900
stop r3
stop p3

echo "-- snapshots of about $SNAPMB MB"
node p4 primary "" "log-min-records 10\nlog-max-size 4m\nmax-txn-size 64m"
run bulk "unix:$W/p4.sock" "$SNAPMB"
sleep 2.5
run snapshot "unix:$W/p4.sock" "$W/snap.db"
want=$(lsn_of p4)
node r4 replica "$REPL_p4" ""
"$D" catchup "unix:$W/r4.sock" "$want" 600 > "$W/r4.out"
secs=$(awk '$1 == "catchup_seconds" { print $2 }' "$W/r4.out")
bytes=$(val snapshot_bytes)
echo "install_seconds $secs" | tee -a "$R"
awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "install_mb_s %.1f\n",
    b / 1048576 / s }' | tee -a "$R"

echo "-- promotion"
kill9 p4
run promote "unix:$W/r4.sock"
stop r4

awk '
	{ v[$1] = $2 }
	END {
		printf "\n%-44s %12s %10s %s\n", "dbrepd vs plain SQLite", \
		    "figure", "ratio", "target"
		printf "%-44s %12.0f %10s\n", "plain SQLite commits/s (FULL)", \
		    v["plain_rate"], "1.00"
		printf "%-44s %12.0f %10.2f %s\n", "dbrepd async commits/s", \
		    v["async_rate"], v["async_rate"] / v["plain_rate"], ">= 0.9"
		printf "%-44s %12.0f %10.2f\n", \
		    "dbrepd async, busy-poll: node 50us", \
		    v["asyncbp_rate"], v["asyncbp_rate"] / v["plain_rate"]
		printf "%-44s %12.0f %10.2f\n", \
		    "dbrepd async, busy-poll: client 300us", \
		    v["asynccl_rate"], v["asynccl_rate"] / v["plain_rate"]
		printf "%-44s %12.0f %10.2f\n", \
		    "dbrepd async, busy-poll: both", \
		    v["asyncbpc_rate"], v["asyncbpc_rate"] / v["plain_rate"]
		for (c = 4; c <= 8; c += 4) {
			printf "%-44s %12.0f %10.2f\n", "plain SQLite, " c \
			    " processes writing", v["plain" c "_rate"], \
			    v["plain" c "_rate"] / v["plain_rate"]
			printf "%-44s %12.0f %10.2f\n", "dbrepd async " \
			    "commits/s, " c " clients", v["async" c "_rate"], \
			    v["async" c "_rate"] / v["plain_rate"]
			printf "%-44s %12.0f %10.2f\n", "  the same, " \
			    "client busy-poll 300us", v["asynccl" c "_rate"], \
			    v["asynccl" c "_rate"] / v["plain_rate"]
		}
		printf "%-44s %12.0f %10.2f\n", \
		    "dbrepd async commits/s, replica on same disk", \
		    v["asyncr_rate"], v["asyncr_rate"] / v["plain_rate"]
		printf "%-44s %12.0f %10.2f\n", "dbrepd quorum-1 commits/s", \
		    v["quorum_rate"], v["quorum_rate"] / v["plain_rate"]
		printf "%-44s %12d %10s\n", "commit p50 us: plain", \
		    v["plain_p50_us"], ""
		printf "%-44s %12d %10s\n", "commit p50 us: async", \
		    v["async_p50_us"], ""
		printf "%-44s %12d %10s\n", "commit p50 us: async, busy-poll both", \
		    v["asyncbpc_p50_us"], ""
		printf "%-44s %12d %10s\n", "commit p99 us: plain", \
		    v["plain_p99_us"], ""
		printf "%-44s %12d %10s\n", "commit p99 us: async", \
		    v["async_p99_us"], ""
		printf "%-44s %12d %10s\n", "commit p99 us: async, busy-poll both", \
		    v["asyncbpc_p99_us"], ""
		printf "%-44s %12d %10s %s\n", "quorum-1 adds, p50 us", \
		    v["quorum_p50_us"] - v["asyncr_p50_us"], "", ""
		printf "%-44s %12d %10s %s\n", "quorum-1 adds, p99 us", \
		    v["quorum_p99_us"] - v["asyncr_p99_us"], "", "<= 2000"
		printf "%-44s %12d %10s %s\n", "replication lag p50 us", \
		    v["lag_p50_us"], "", "< 1000"
		printf "%-44s %12d %10s %s\n", "replication lag p99 us", \
		    v["lag_p99_us"], "", "< 10000"
		printf "%-44s %12.0f %10.2f %s\n", \
		    "catch-up records/s (ratio: to async commits)", \
		    v["catchup_rate"], v["catchup_rate"] / v["async_rate"], \
		    ">= 3"
		printf "%-44s %12.1f %10s %s\n", "snapshot to a file, MB/s", \
		    v["snapshot_mb_s"], "", ">= 100"
		printf "%-44s %12.1f %10s\n", "snapshot to a new replica, MB/s", \
		    v["install_mb_s"], ""
		printf "%-44s %12.1f %10s %s\n", "promotion, ms", \
		    v["promote_ms"], "", "< 1000"
		printf "%-44s %12.1f %10s\n", "promotion until writable, ms", \
		    v["promote_writable_ms"], ""
	}' "$R"
