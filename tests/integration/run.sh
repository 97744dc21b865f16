#!/bin/sh
# Run the integration tests inside a private mount namespace whose
# /dev/log belongs to an rsyslogd of our own, writing to
# $RESULTS/syslog.log: the tests read what the daemons logged there, and
# the machine's own /dev/log (if any) is neither needed nor touched.
set -eu
: "${TOP:?}" "${RESULTS:?}"
if [ "$(id -u)" != 0 ]; then
	echo "integration tests need root (namespaces, privilege drop)" >&2
	printf '{"passed": 0, "failed": 1, "skipped": 0}\n' \
	    > "$RESULTS/integration.json"
	exit 1
fi
old=$(mktemp -d /tmp/olddev.XXXXXX)
rc=0
unshare -m sh -c '
	set -eu
	old=$1
	mount --make-rprivate /
	mount --rbind /dev "$old"
	mount -t tmpfs -o mode=755 tmpfs /dev
	for n in null zero full random urandom tty ptmx; do
		[ -e "$old/$n" ] || continue
		touch "/dev/$n"; mount --bind "$old/$n" "/dev/$n"
	done
	for d in pts shm mqueue; do
		[ -d "$old/$d" ] || continue
		mkdir -p "/dev/$d"; mount --rbind "$old/$d" "/dev/$d"
	done
	ln -s /proc/self/fd /dev/fd
	ln -s /proc/self/fd/0 /dev/stdin
	ln -s /proc/self/fd/1 /dev/stdout
	ln -s /proc/self/fd/2 /dev/stderr
	umount -l "$old"
	S=$RESULTS/syslog
	mkdir -p "$S"
	cat > "$S/rsyslog.conf" <<CONF
global(workDirectory="$S")
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")
template(name="t" type="string" string="%timegenerated:::date-rfc3339% %syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="$RESULTS/syslog.log" template="t" flushOnTXEnd="on" asyncWriting="off")
CONF
	rsyslogd -f "$S/rsyslog.conf" -i "$S/rsyslogd.pid"
	i=0
	while [ ! -S /dev/log ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	rc=0
	python3 "$TOP/tests/lib/runner.py" "$TOP/tests/integration" \
	    "$TOP/tests/e2e" || rc=$?
	kill "$(cat "$S/rsyslogd.pid")" 2>/dev/null || true
	exit $rc
' integration "$old" || rc=$?
rmdir "$old" 2>/dev/null || true
exit $rc
