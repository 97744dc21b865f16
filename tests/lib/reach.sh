# tests/lib/reach.sh, sourced by tests/run.sh and tests/e2e/demo.sh.
#
# The daemons' workers run as nobody and open their sockets, databases
# and files by path, so the folders the tests and the demo keep them in
# must be reachable by nobody.  A clone made under `mktemp -d` (mode
# 0700) is not.  reach_dir DIR NAME prints DIR when nobody can reach it
# (or its nearest existing parent), else a folder of ours
# under /var/tmp named after NAME and the checkout, made reachable.
reach_dir() {
	_d=$1
	_p=$_d
	while [ ! -d "$_p" ]; do
		_p=$(dirname "$_p")
	done
	if ! command -v setpriv >/dev/null 2>&1 ||
	    setpriv --reuid=65534 --regid=65534 --clear-groups \
	    test -x "$_p" 2>/dev/null; then
		echo "$_d"
		return
	fi
	_h=$(printf '%s' "$_d" | cksum | cut -d' ' -f1)
	_o=/var/tmp/lbd-suite-$2-$_h
	mkdir -p "$_o" && chmod 755 "$_o"
	echo "$_o"
}
