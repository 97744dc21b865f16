#!/bin/sh
# bench_appd.sh: appd side by side with the stack users would otherwise
# pick, in one run (make bench runs it):
#
#   webd -> appd        a hello-world C module (tests/apps/testapp.c's
#                       /hello), appd static pool of $W workers, webd
#                       with one worker, over a unix socket (keep-alive)
#   nginx -> php-fpm    a hello-world PHP script, php-fpm static pool of
#                       $W children, nginx with one worker, FastCGI over
#                       a unix socket (Debian's defaults otherwise)
#   appd alone          the same module, wrk straight to appd over TCP
#
# wrk on loopback, $C connections, $T seconds each after a warm-up, in
# BENCH_ROUNDS rounds (3) of the three, medians printed; with
# two CPUs or more the servers are pinned to the first half of the CPUs
# and wrk to the rest.  Prints requests/s and p50/p99 latency of each,
# and the ratios against nginx -> php-fpm (target: >= 1.0x requests/s,
# p99 no worse).  APPD_BENCH_SECONDS (5), APPD_BENCH_CONNS (32),
# APPD_BENCH_WORKERS (4).  The machine's speed drifts: compare the
# ratios of one run, not figures across runs.
set -eu
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
B=$top/$BUILD/bin
MOD=$top/$BUILD/lib/testapp.so
T=${APPD_BENCH_SECONDS:-5}
R=${BENCH_ROUNDS:-3}
C=${APPD_BENCH_CONNS:-32}
W=${APPD_BENCH_WORKERS:-4}

FPM=$(command -v php-fpm 2>/dev/null || ls /usr/sbin/php-fpm* 2>/dev/null |
    head -1 || true)
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
for x in "$B/appd" "$B/webd" "$MOD"; do
	[ -e "$x" ] || { echo "bench_appd: build first (make bench)" >&2
	    exit 1; }
done
for x in wrk "$NGINX" "$FPM"; do
	command -v "$x" >/dev/null 2>&1 || { echo "bench_appd: $x missing" \
	    "(make deps-bench installs wrk, nginx and php-fpm)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench_appd: run as root" >&2; exit 1; }

D=$(mktemp -d /tmp/appd-bench.XXXXXX)
chmod 755 "$D"
PIDFILES=""
cleanup() {
	for f in $PIDFILES; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	sleep 0.5
	for f in $PIDFILES; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPUs: servers on the first half, wrk on the others
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
SRV=""
CLI=""
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	half=$((ncpu / 2))
	SRV="taskset -c 0-$((half - 1))"
	CLI="taskset -c $half-$((ncpu - 1))"
fi
wrkthreads=$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))

wait_http() {
	i=0
	while ! curl -sf -o /dev/null "$1"; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "bench_appd: $1 does not answer" >&2
		    exit 1; }
		sleep 0.1
	done
}

# wrk, then "rps p50_ms p99_ms errors"
measure() {
	$CLI wrk -t"$wrkthreads" -c"$C" -d2s "$1" >/dev/null 2>&1 || true
	$CLI wrk -t"$wrkthreads" -c"$C" -d"${T}s" --latency "$1" \
	    > "$D/wrk.out" 2>&1
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /s$/) return v * 1000
		return v
	}
	/Requests\/sec/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/Non-2xx|Socket errors/ { err = err " " $0 }
	END { printf "%.0f %.3f %.3f%s\n", rps, p50, p99,
	    err == "" ? "" : " ERRORS:" err }' "$D/wrk.out"
	if grep -q "Non-2xx\|Socket errors" "$D/wrk.out"; then
		for f in "$D"/*.log "$D"/nginx.err; do
			[ -s "$f" ] || continue
			echo "== $f" >&2
			grep -v "started\|ready" "$f" | tail -5 >&2
		done
	fi
}

# appd and webd
AP=$(port)
WP=$(port)
cat > "$D/appd.conf" <<EOF
pidfile "$D/appd.pid"
listen unix:$D/appd.sock mode 0666
listen 127.0.0.1:$AP
pool static
workers $W
request-timeout 60s
slow-request 0
app test {
	module "$MOD"
}
route "/t/" app test
EOF
cat > "$D/webd.conf" <<EOF
workers 1
pidfile "$D/webd.pid"
access-log off
server "bench" default {
	listen 127.0.0.1:$WP
	proxy app
}
upstream app {
	server app1 unix:$D/appd.sock
}
EOF
# in the foreground (-d), their logs in files, shown when wrk sees errors
$SRV "$B/appd" -d -f "$D/appd.conf" > "$D/appd.log" 2>&1 &
PIDFILES="$PIDFILES $D/appd.pid"
$SRV "$B/webd" -d -f "$D/webd.conf" > "$D/webd.log" 2>&1 &
PIDFILES="$PIDFILES $D/webd.pid"

# php-fpm and nginx
NP=$(port)
printf '<?php echo "hello, world\\n";\n' > "$D/hello.php"
chmod 644 "$D/hello.php"
cat > "$D/php-fpm.conf" <<EOF
[global]
pid = $D/php-fpm.pid
error_log = $D/php-fpm.log
daemonize = yes
[www]
user = nobody
group = nogroup
listen = $D/php-fpm.sock
listen.mode = 0666
pm = static
pm.max_children = $W
EOF
cat > "$D/nginx.conf" <<EOF
worker_processes 1;
pid $D/nginx.pid;
error_log $D/nginx.err;
user nobody nogroup;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $D/nginx-body;
	fastcgi_temp_path $D/nginx-fastcgi;
	proxy_temp_path $D/nginx-proxy;
	uwsgi_temp_path $D/nginx-uwsgi;
	scgi_temp_path $D/nginx-scgi;
	server {
		listen 127.0.0.1:$NP;
		location / {
			include /etc/nginx/fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $D/hello.php;
			fastcgi_pass unix:$D/php-fpm.sock;
		}
	}
}
EOF
$SRV "$FPM" -y "$D/php-fpm.conf" -R
PIDFILES="$PIDFILES $D/php-fpm.pid"
$SRV "$NGINX" -p "$D" -c "$D/nginx.conf" -g "daemon on;"
PIDFILES="$PIDFILES $D/nginx.pid"

wait_http "http://127.0.0.1:$WP/t/hello"
wait_http "http://127.0.0.1:$NP/hello.php"
curl -s "http://127.0.0.1:$WP/t/hello" | grep -q "hello, world" ||
    { echo "bench_appd: webd -> appd does not answer hello" >&2; exit 1; }
curl -s "http://127.0.0.1:$NP/hello.php" | grep -q "hello, world" ||
    { echo "bench_appd: nginx -> php-fpm does not answer hello" >&2; exit 1; }

echo "appd bench: $W workers each, $C connections, $R rounds of ${T}s" \
    "(medians), $ncpu CPUs ${SRV:+(servers: $SRV, wrk: $CLI)}"
# the three in turn, round after round, so that the machine's drift
# weighs on each alike; appd alone first in a round: webd's idle
# connections to appd would otherwise take the workers' room for wrk's
r=0
while [ $r -lt "$R" ]; do
	measure "http://127.0.0.1:$AP/t/hello" >> "$D/alone.rows"
	measure "http://127.0.0.1:$NP/hello.php" >> "$D/ref.rows"
	measure "http://127.0.0.1:$WP/t/hello" >> "$D/via.rows"
	r=$((r + 1))
done

# the median of column $2 of file $1, and the errors seen in any round
median() {
	cut -d' ' -f"$2" "$1" | sort -n | awk '{ v[NR] = $1 }
	    END { print v[int((NR + 1) / 2)] }'
}
row() {
	echo "$(median "$1" 1) $(median "$1" 2) $(median "$1" 3)" \
	    "$(cut -d' ' -f4- "$1" | grep . | sort -u | tr '\n' ' ')"
}
ref=$(row "$D/ref.rows")
via=$(row "$D/via.rows")
alone=$(row "$D/alone.rows")
printf '%-22s %12s %10s %10s\n' "" "requests/s" "p50 ms" "p99 ms"
for row in "nginx -> php-fpm:$ref" "webd -> appd:$via" "appd alone:$alone"; do
	name=${row%%:*}
	set -- ${row#*:}
	printf '%-22s %12s %10s %10s %s\n' "$name" "$1" "$2" "$3" \
	    "$(shift 3; echo "$*")"
done
set -- $ref
rrps=$1 rp99=$3
set -- $via
printf 'webd -> appd / nginx -> php-fpm: %s requests/s, p99 %s\n' \
    "$(echo "$1 $rrps" | awk '{ printf "%.2fx", $1 / $2 }')" \
    "$(echo "$3 $rp99" | awk '{ printf "%.2fx", $1 / $2 }')"
set -- $alone
printf 'appd alone / nginx -> php-fpm:   %s requests/s, p99 %s\n' \
    "$(echo "$1 $rrps" | awk '{ printf "%.2fx", $1 / $2 }')" \
    "$(echo "$3 $rp99" | awk '{ printf "%.2fx", $1 / $2 }')"
