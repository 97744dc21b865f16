#!/bin/sh
# tests/e2e/demo.sh start|stop|status: the demo site on this machine
# (make demo, make demo-stop), through the rc.d scripts and the sample
# confs that ship with each daemon (lbd/demo.conf, webd/demo.conf,
# appd/demo.conf, dbrepd/demo-*.conf):
#
#	lbd	127.0.0.1:8080 (HTTP), 127.0.0.1:8443 (HTTPS),
#		127.0.0.1:8404 (statistics, /metrics, /healthz)
#	webd	web1 127.0.0.1:8081, web2 127.0.0.1:8082
#	appd	app1 (behind web1), app2 (behind web2), on unix sockets
#	dbrepd	db1 the primary, db2 a replica (app2 reads from it)
#
# PORTS shifts every port by that much (the end-to-end tests run their
# own site beside a demo that may be running).  Everything it makes goes
# in $STATE (default ./state, ignored by git):
# the instance confs, pidfiles and sockets, the databases, the TLS
# certificate (self-signed, made on the first run), and the syslog file
# when no syslog daemon was running (state/log/syslog.log).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${STATE:-}" ]; then
	# ./state, or where nobody can reach it, with ./state a link to it
	. "$top/tests/lib/reach.sh"
	STATE=$top/state
	if [ ! -L "$STATE" ]; then
		s=$(reach_dir "$STATE" state)
		if [ "$s" != "$STATE" ] && [ ! -d "$STATE" ]; then
			ln -s "$s" "$STATE"
		fi
	fi
	# the daemons get the real path, never one through ./state's link
	[ -L "$STATE" ] && STATE=$(readlink -f "$STATE")
fi
BUILD=${BUILD:-build}
export BINDIR="$top/$BUILD/bin" CONFDIR="$STATE/conf" RUNDIR="$STATE/run"
export STOP_TIMEOUT=${STOP_TIMEOUT:-15}
site="$CONFDIR/site"
o=${PORTS:-0}
p_http=$((8080 + o)) p_https=$((8443 + o)) p_stats=$((8404 + o))
p_web1=$((8081 + o)) p_web2=$((8082 + o))
p_wm1=$((9081 + o)) p_wm2=$((9082 + o))
p_app1=$((9181 + o)) p_app2=$((9182 + o))
p_db1=$((5433 + o)) p_db1r=$((5434 + o)) p_db1m=$((9433 + o))
p_db2=$((5443 + o)) p_db2r=$((5444 + o)) p_db2m=$((9443 + o))
rc="$top/rc.d"
user=nobody

syslog_up() {
	[ -S /dev/log ] && python3 -c 'import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("/dev/log")' 2>/dev/null
}

syslog_start() {
	if syslog_up; then
		if [ -f "$STATE/run/rsyslogd.pid" ]; then
			echo "syslog: $STATE/log/syslog.log"
		else
			echo "syslog: the machine's syslog daemon (/dev/log)"
		fi
		return 0
	fi
	mkdir -p "$STATE/log"
	cat > "$STATE/conf/rsyslog.conf" <<EOF
global(workDirectory="$STATE/log")
module(load="imuxsock" SysSock.Name="/dev/log")
template(name="t" type="string" string="%timegenerated:::date-rfc3339% %syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="$STATE/log/syslog.log" template="t")
EOF
	rm -f /dev/log
	rsyslogd -f "$STATE/conf/rsyslog.conf" -i "$STATE/run/rsyslogd.pid"
	i=0
	while ! syslog_up && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	echo "syslog: $STATE/log/syslog.log"
}

syslog_stop() {
	if [ -f "$STATE/run/rsyslogd.pid" ]; then
		kill "$(cat "$STATE/run/rsyslogd.pid")" 2>/dev/null || true
		rm -f "$STATE/run/rsyslogd.pid"
	fi
}

tls_setup() {
	mkdir -p "$STATE/tls"
	if [ ! -f "$STATE/tls/site.crt" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$STATE/tls/site.key" \
		    -out "$STATE/tls/site.crt" -days 365 -subj "/CN=localhost" \
		    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		    2>/dev/null
		chmod 600 "$STATE/tls/site.key"
		echo "made a self-signed certificate: $STATE/tls/site.crt"
	fi
	if [ ! -f "$STATE/tls/ticket.key" ]; then
		head -c 64 /dev/urandom > "$STATE/tls/ticket.key"
		chmod 600 "$STATE/tls/ticket.key"
	fi
}

# inst NAME TEMPLATE "macro=value"...: an instance conf including TEMPLATE
inst() {
	name=$1
	tmpl=$2
	shift 2
	{
		echo "# $name: written by tests/e2e/demo.sh; see $tmpl"
		echo "state = $STATE"
		echo "name = $name"
		for m in "$@"; do
			echo "${m%%=*} = ${m#*=}"
		done
		echo "include \"$top/$tmpl\""
	} > "$CONFDIR/$name.conf"
}

confs() {
	mkdir -p "$CONFDIR" "$RUNDIR" "$STATE/db" "$STATE/tmp"
	chmod 755 "$STATE" "$RUNDIR"
	chown "$user" "$STATE/db" "$STATE/tmp"
	inst db1 dbrepd/demo-primary.conf "port=$p_db1" "repl=$p_db1r" \
	    "metrics=$p_db1m"
	inst db2 dbrepd/demo-replica.conf "port=$p_db2" "repl=$p_db2r" \
	    "metrics=$p_db2m" "primary=127.0.0.1:$p_db1r"
	inst app1 appd/demo.conf "status=$p_app1" \
	    "module=$top/$BUILD/lib/notes.so" \
	    "db=primary=unix:$RUNDIR/db1.sock,replica=unix:$RUNDIR/db1.sock"
	inst app2 appd/demo.conf "status=$p_app2" \
	    "module=$top/$BUILD/lib/notes.so" \
	    "db=primary=unix:$RUNDIR/db1.sock,replica=unix:$RUNDIR/db2.sock"
	inst web1 webd/demo.conf "port=$p_web1" "metrics=$p_wm1" \
	    "www=$top/appd/apps/notes-www" "app=$RUNDIR/app1.sock"
	inst web2 webd/demo.conf "port=$p_web2" "metrics=$p_wm2" \
	    "www=$top/appd/apps/notes-www" "app=$RUNDIR/app2.sock"
	inst lbd lbd/demo.conf "http=$p_http" "https=$p_https" \
	    "stats=$p_stats" "web1=$p_web1" "web2=$p_web2"
	cat > "$site" <<EOF
# the demo site, in the order it starts (rc.d/site)
dbrepd db1
dbrepd db2
appd app1
appd app2
webd web1
webd web2
lbd lbd
EOF
}

# wait_http URL [TIMEOUT]: until URL answers 2xx
wait_http() {
	i=0
	while [ $i -lt $((${2:-15} * 10)) ]; do
		if curl -fsS -o /dev/null -k --max-time 1 "$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "demo: $1 does not answer" >&2
	return 1
}

start() {
	mkdir -p "$STATE/conf" "$STATE/run"
	syslog_start
	tls_setup
	confs
	"$rc/site" start "$site"
	ok=0
	for u in http://127.0.0.1:$p_db1m/metrics \
	    http://127.0.0.1:$p_db2m/metrics http://127.0.0.1:$p_app1/ping \
	    http://127.0.0.1:$p_app2/ping http://127.0.0.1:$p_web1/healthz \
	    http://127.0.0.1:$p_web2/healthz http://127.0.0.1:$p_stats/healthz \
	    http://127.0.0.1:$p_http/ https://127.0.0.1:$p_https/ \
	    http://127.0.0.1:$p_http/api/notes; do
		wait_http "$u" 20 || ok=1
	done
	[ $ok = 0 ] || { echo "demo: some parts did not come up" >&2; return 1; }
	cat <<EOF

The notes site runs:
	http://127.0.0.1:$p_http/		(through lbd)
	https://127.0.0.1:$p_https/		(self-signed: $STATE/tls/site.crt)
	http://127.0.0.1:$p_stats/		lbd statistics (/metrics, /healthz)
	http://127.0.0.1:$p_web1/, :$p_web2/	webd web1, web2 (/metrics on $p_wm1, $p_wm2)
	http://127.0.0.1:$p_app1/status	appd app1 (app2 on $p_app2)
	http://127.0.0.1:$p_db1m/metrics	dbrepd db1, the primary (db2 on $p_db2m)
Logs: see "syslog:" above.  Status: rc.d/site status $site
  (with CONFDIR=$CONFDIR RUNDIR=$RUNDIR BINDIR=$BINDIR)
Stop it with: make demo-stop
EOF
}

stop() {
	if [ -f "$site" ]; then
		"$rc/site" stop "$site" || true
	fi
	syslog_stop
}

case ${1:-} in
start)	start ;;
stop)	stop ;;
status)	"$rc/site" status "$site" ;;
*)	echo "usage: $0 start|stop|status" >&2; exit 1 ;;
esac
