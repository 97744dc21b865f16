#!/bin/sh
# tests/e2e/lab.sh: the site across hosts, each host a network namespace
# on this machine (make lab, make lab-down).  As root:
#
#	lab.sh up		make the hosts, write their confs, start them
#	lab.sh down		stop everything, remove the hosts (idempotent)
#	lab.sh status		each host's daemons, who holds the address
#	lab.sh exec HOST CMD...	run CMD on HOST (in its namespace, with
#				CONFDIR, RUNDIR, BINDIR set as rc.d wants
#				them, BINDIR first in PATH, and on a db
#				host DBREP_NODES=its unix socket)
#	lab.sh vip		the lb host that holds the service address
#	lab.sh link HOST down|up	unplug HOST's cable at the switch, or
#				plug it back
#	lab.sh partition A B	drop what A and B send each other, at the
#				switch; lab.sh heal ends every partition
#
# The hosts, their addresses and roles come from the site description,
# tests/e2e/hosts/site.txt ($SITE); tests/e2e/hosts/labgen.py writes
# their confs.  Host H is the namespace $LAB_PREFIX-H (default lab-H),
# with one interface, eth0, plugged into the bridge of the namespace
# $LAB_PREFIX-sw (the switch).  Nothing in the lab has a route out of its
# LAN, and, before the first namespace is made, the root namespace gets a
# blackhole route for the site's guard network (10.200.0.0/16), so that
# a command run by mistake outside the lab fails here instead of sending
# packets out of the machine; the route goes when the last lab does.
#
# Every process of the lab runs in a host's namespace (ip netns exec):
# the daemons through the same rc.d scripts and binaries as make demo
# (rc.d/site with the host's list: firewall, then its daemons).  State
# goes in $LAB (default ./state/lab): LAB/keys (the site's certificate,
# the shared TLS ticket key, the database secret, made once), and
# LAB/HOST/{conf,run,db,tmp,keys} for each host.  With no syslog daemon
# on /dev/log, one is started (in the switch namespace) that writes
# LAB/log/syslog.log.
# shellcheck disable=SC2154
# (site_env sets the site's variables)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
if [ -z "${LAB:-}" ]; then
	# ./state/lab, or where the daemons' user can reach it
	. "$top/tests/lib/reach.sh"
	LAB=$(reach_dir "$top/state/lab" lab)
fi
P=${LAB_PREFIX:-lab}
SITE=${SITE:-$top/tests/e2e/hosts/site.txt}
gen=$top/tests/e2e/hosts/labgen.py
rcd=$top/rc.d
bindir=$top/$BUILD/bin
LOCK=${LAB_LOCK:-/run/lbd-suite-lab.lock}
user=nobody
sw=$P-sw

die() {
	echo "lab: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
case $P in
*[!a-z0-9]*|'') die "LAB_PREFIX: lower-case letters and digits" ;;
esac

# the hosts from the site description: hosts (in start order), lb_hosts,
# lan_len, guard, vip, server_name, interface, addr_HOST, role_HOST
site_env() {
	out=$(python3 "$gen" -s "$SITE" shell) || exit 1
	eval "$out"
}

# hostvar NAME HOST: the value of $NAME_HOST
hostvar() {
	eval "echo \"\${$1_$2:-}\""
}

# run CMD... holding the lab lock: making or removing namespaces and the
# guard route, so that a lab going down never takes the guard from one
# coming up
locked() {
	(
		flock 9
		"$@"
	) 9>"$LOCK"
}

labs_left() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -q -- '-sw$'
}

switch_up() {
	ip route replace blackhole "$guard"
	ip netns add "$sw"
	ip -n "$sw" link set lo up
	ip -n "$sw" link add br0 type bridge
	ip -n "$sw" link set br0 up
}

# host_up NAME: the namespace, its cable to the switch, its address
host_up() {
	h=$1 ns=$P-$1
	ip netns add "$ns"
	ip -n "$sw" link add "p-$h" type veth peer name eth0 netns "$ns"
	ip -n "$sw" link set "p-$h" master br0
	ip -n "$sw" link set "p-$h" up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$(hostvar addr "$h")/$lan_len" dev eth0
	ip -n "$ns" link set eth0 up
	if [ "$(hostvar role "$h")" = lb ]; then
		# lbd listens on the service address before it holds it
		ip netns exec "$ns" sysctl -q -w net.ipv4.ip_nonlocal_bind=1
	fi
}

# inhost HOST CMD...: CMD on HOST, with the rc.d settings of HOST
inhost() {
	h=$1
	shift
	d=$LAB/$h
	set -- env CONFDIR="$d/conf" RUNDIR="$d/run" BINDIR="$bindir" \
	    PATH="$bindir:$PATH" STOP_TIMEOUT="${STOP_TIMEOUT:-10}" "$@"
	if [ "$(hostvar role "$h")" = db ]; then
		set -- env DBREP_NODES="unix:$d/run/dbrepd.sock" "$@"
	fi
	ip netns exec "$P-$h" "$@"
}

keys() {
	k=$LAB/keys
	mkdir -p "$k"
	chmod 700 "$k"
	if [ ! -f "$k/site.crt" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$k/site.key" -out "$k/site.crt" -days 365 \
		    -subj "/CN=$server_name" \
		    -addext "subjectAltName=DNS:$server_name,IP:$vip" \
		    2>/dev/null
	fi
	# the TLS ticket key both lbd read: a session resumes on either
	[ -f "$k/ticket.key" ] || head -c 64 /dev/urandom > "$k/ticket.key"
	[ -f "$k/dbrepd.secret" ] ||
	    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' \
	    > "$k/dbrepd.secret"
	chmod 600 "$k"/*
}

host_dirs() {
	for h in $hosts; do
		d=$LAB/$h
		mkdir -p "$d/run" "$d/db" "$d/tmp" "$d/keys"
		chmod 755 "$d" "$d/run"
		chmod 700 "$d/keys"
		chown "$user" "$d/db" "$d/tmp"
		case $(hostvar role "$h") in
		lb)	cp -p "$LAB/keys/site.crt" "$LAB/keys/site.key" \
			    "$LAB/keys/ticket.key" "$d/keys/" ;;
		db)	cp -p "$LAB/keys/dbrepd.secret" "$d/keys/" ;;
		*)	cp -p "$LAB/keys/site.crt" "$d/keys/" ;;
		esac
	done
}

syslog_up() {
	[ -S /dev/log ] && python3 -c 'import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("/dev/log")' 2>/dev/null
}

syslog_start() {
	syslog_up && return 0
	mkdir -p "$LAB/log"
	cat > "$LAB/log/rsyslog.conf" <<EOF
global(workDirectory="$LAB/log")
module(load="imuxsock" SysSock.Name="/dev/log")
template(name="t" type="string" string="%timegenerated:::date-rfc3339% %syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="$LAB/log/syslog.log" template="t")
EOF
	rm -f /dev/log
	ip netns exec "$sw" rsyslogd -f "$LAB/log/rsyslog.conf" \
	    -i "$LAB/log/rsyslogd.pid"
	i=0
	while ! syslog_up && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	echo "syslog: $LAB/log/syslog.log"
}

# wait_url HOST URL SECONDS [CURL OPTIONS...]: until URL answers 2xx
# from HOST
wait_url() {
	h=$1 u=$2 t=$3
	shift 3
	i=0
	while [ $i -lt $((t * 10)) ]; do
		if ip netns exec "$P-$h" curl -fsS -o /dev/null --max-time 1 \
		    "$@" "$u" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "lab: $u does not answer from $h" >&2
	return 1
}

vip_holder() {
	for h in $lb_hosts; do
		if ip -n "$P-$h" -4 addr show dev "$interface" 2>/dev/null |
		    grep -q "inet $vip/"; then
			echo "$h"
			return 0
		fi
	done
	return 1
}

start_host() {
	inhost "$1" "$rcd/site" start "$LAB/$1/conf/site" |
	    sed "s/^/$1: /"
}

# the steps of up, in a process of their own (set -e holds there)
up_steps() {
	site_env
	mkdir -p "$LAB"
	locked switch_up
	for h in $hosts; do locked host_up "$h"; done
	keys
	python3 "$gen" -s "$SITE" conf "$LAB" --top "$top" --build "$BUILD" \
	    --secret "$LAB/keys/dbrepd.secret"
	host_dirs
	syslog_start
	# the databases, the web hosts, then the load balancers: the first
	# lb host (the preferred) has the address before the others start
	first=""
	for h in $hosts; do
		case $(hostvar role "$h") in
		lb)	;;
		*)	start_host "$h" ;;
		esac
	done
	for h in $lb_hosts; do
		start_host "$h"
		if [ -z "$first" ]; then
			first=$h
			i=0
			while [ "$(vip_holder || true)" != "$h" ] &&
			    [ $i -lt 100 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			[ "$(vip_holder || true)" = "$h" ] ||
			    die "$h did not take the service address $vip"
		fi
	done
	# the site answers through the service address, from the client
	for h in $hosts; do
		[ "$(hostvar role "$h")" = client ] || continue
		wait_url "$h" "https://$server_name/api/notes" 30 \
		    --cacert "$LAB/$h/keys/site.crt" \
		    --resolve "$server_name:443:$vip"
	done
	echo "lab $P up: https://$server_name/ at $vip (held by" \
	    "$(vip_holder)), state in $LAB"
}

up() {
	if [ -e "/run/netns/$sw" ]; then
		die "lab $P is up (lab.sh down first)"
	fi
	site_env
	if ! sh "$0" _up; then
		echo "lab: up failed, taking it down" >&2
		down >/dev/null 2>&1 || true
		exit 1
	fi
	cat <<EOF
By hand:
	sh $0 status
	sh $0 exec client curl --cacert $LAB/client/keys/site.crt \\
	    --resolve $server_name:443:$vip https://$server_name/api/whoami
	sh $0 exec lb1 lbdctl -s $LAB/lb1/run/lbd.sock show servers
	sh $0 exec db2 dbrepctl status
The runbook: tests/e2e/hosts/RUNBOOK.md.  Stop it: make lab-down
EOF
}

ns_list() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true
}

lab_pids() {
	for ns in $(ns_list); do
		ip netns pids "$ns" 2>/dev/null || true
	done
}

# every process of the lab's namespaces: TERM, then KILL what is left
# (again, for children a dying master may have just forked), until none
kill_all() {
	sig=TERM
	for _ in 1 2 3 4 5; do
		pids=$(lab_pids)
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -$sig $pids 2>/dev/null || true
		i=0
		while [ $i -lt 30 ] && [ -n "$(lab_pids)" ]; do
			sleep 0.1
			i=$((i + 1))
		done
		sig=KILL
	done
	[ -z "$(lab_pids)" ] || echo "lab: processes left: $(lab_pids)" >&2
}

ns_del() {
	for ns in $(ns_list); do
		ip netns del "$ns" 2>/dev/null || true
	done
	if ! labs_left; then
		site_env
		ip route del blackhole "$guard" 2>/dev/null || true
	fi
}

down() {
	kill_all
	# pidfiles and sockets of processes that are gone
	for d in "$LAB"/*/run; do
		[ -d "$d" ] && rm -f "$d"/*.pid "$d"/*.sock
	done
	rm -f "$LAB/log/rsyslogd.pid"
	if [ -S /dev/log ] && ! syslog_up; then
		rm -f /dev/log
	fi
	locked ns_del
	echo "lab $P down"
}

status() {
	site_env
	[ -e "/run/netns/$sw" ] || { echo "lab $P: down"; exit 3; }
	r=0
	for h in $hosts; do
		inhost "$h" "$rcd/site" status "$LAB/$h/conf/site" |
		    sed "s/^/$h: /" || r=3
	done
	echo "service address $vip: held by $(vip_holder || echo nobody)"
	exit $r
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
up)	up ;;
_up)	up_steps ;;
down)	down ;;
status)	status ;;
exec)	[ $# -ge 2 ] || die "exec HOST CMD..."
	site_env
	h=$1
	shift
	[ -n "$(hostvar role "$h")" ] || die "no host $h"
	inhost "$h" "$@" ;;
vip)	site_env
	vip_holder ;;
link)	[ $# = 2 ] || die "link HOST down|up"
	case $2 in up|down) ;; *) die "link HOST down|up" ;; esac
	ip -n "$sw" link set "p-$1" "$2" ;;
partition)
	[ $# = 2 ] || die "partition HOST HOST"
	ip netns exec "$sw" nft -f - <<EOF
table bridge lab_partition {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "p-$1" oifname "p-$2" drop
		iifname "p-$2" oifname "p-$1" drop
	}
}
EOF
	;;
heal)	ip netns exec "$sw" nft delete table bridge lab_partition \
	    2>/dev/null || true ;;
*)	echo "usage: $0 up|down|status|exec HOST CMD...|vip|link HOST" \
	    "down|up|partition A B|heal" >&2
	exit 1 ;;
esac
