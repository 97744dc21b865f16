#!/usr/bin/env python3
"""faultproxy.py: a TCP proxy that injects faults, for the tests.

The kernel of the test machines has no sch_netem, so link faults are made
in user space: put the proxy between two daemons (a replica and its
primary) and change its mode while they talk.

    from faultproxy import FaultProxy
    fp = FaultProxy("127.0.0.1:5434").start()   # fp.addr: connect here
    fp.set("delay", ms=200)      # each chunk waits 200 ms, both ways
    fp.set("throttle", bps=65536)  # at most 64 KiB/s each way
    fp.set("blackhole")          # bytes are read and dropped; new
                                 # connections are accepted and starve
    fp.set("reset")              # every connection gets an RST; new ones
                                 # too
    fp.set("halfopen")           # like blackhole, and connections are
                                 # never closed: the peers must notice
    fp.set("pass")
    fp.stop()

or from a shell, one mode for its whole life:

    faultproxy.py --listen 127.0.0.1:15434 --target 127.0.0.1:5434 \
        [--mode delay --ms 200] [--max-seconds 60]

Only loopback (or a test namespace's) addresses: it connects where told.
"""
import argparse
import select
import socket
import struct
import sys
import threading
import time

MODES = ("pass", "delay", "throttle", "blackhole", "reset", "halfopen")


def hostport(s):
    h, _, p = s.rpartition(":")
    return h.strip("[]"), int(p)


class FaultProxy:
    def __init__(self, target, listen="127.0.0.1:0"):
        self.target = hostport(target)
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(hostport(listen))
        self.ls.listen(64)
        self.addr = "%s:%d" % self.ls.getsockname()
        self.mode, self.ms, self.bps = "pass", 0, 0
        self.gen = 0            # bumped on "reset": pumps kill their pair
        self.lock = threading.Lock()
        self.pairs = []
        self.done = threading.Event()
        self.conns = 0          # accepted so far

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def set(self, mode, ms=0, bps=0):
        assert mode in MODES, mode
        with self.lock:
            self.mode, self.ms, self.bps = mode, ms, bps
            if mode == "reset":
                self.gen += 1
                for a, b in self.pairs:
                    for s in (a, b):
                        self._rst(s)
                self.pairs = []

    @staticmethod
    def _rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass

    def stop(self):
        self.done.set()
        try:
            self.ls.close()
        except OSError:
            pass
        with self.lock:
            for a, b in self.pairs:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass
            self.pairs = []

    def _accept(self):
        while not self.done.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns += 1
            with self.lock:
                mode = self.mode
            if mode == "reset":
                self._rst(c)
                continue
            if mode in ("blackhole", "halfopen"):
                # accepted, never answered
                threading.Thread(target=self._starve, args=(c,),
                                 daemon=True).start()
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._rst(c)
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            with self.lock:
                self.pairs.append((c, u))
            threading.Thread(target=self._pump, args=(c, u),
                             daemon=True).start()

    def _starve(self, c):
        c.settimeout(0.2)
        while not self.done.is_set():
            try:
                if not c.recv(65536):
                    break
            except socket.timeout:
                with self.lock:
                    if self.mode in ("pass", "delay", "throttle"):
                        break       # healed: the peer will reconnect
                continue
            except OSError:
                break
        with self.lock:
            halfopen = self.mode == "halfopen"
        if not halfopen:
            try:
                c.close()
            except OSError:
                pass

    def _pump(self, a, b):
        other = {a: b, b: a}
        with self.lock:
            gen = self.gen
        try:
            while not self.done.is_set():
                try:
                    r, _, _ = select.select([a, b], [], [], 0.2)
                except (OSError, ValueError):
                    break
                with self.lock:
                    if self.gen != gen:
                        return
                    mode, ms, bps = self.mode, self.ms, self.bps
                for s in r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        if mode == "halfopen":
                            continue
                        raise ConnectionError
                    if mode in ("blackhole", "halfopen"):
                        continue        # dropped on the floor
                    if mode == "delay" and ms:
                        time.sleep(ms / 1000.0)
                    if mode == "throttle" and bps:
                        step = max(1, bps // 20)
                        for i in range(0, len(data), step):
                            other[s].sendall(data[i:i + step])
                            time.sleep(len(data[i:i + step]) / bps)
                        continue
                    other[s].sendall(data)
        except (ConnectionError, OSError):
            pass
        finally:
            with self.lock:
                if (a, b) in self.pairs:
                    self.pairs.remove((a, b))
                halfopen = self.mode == "halfopen"
            if not halfopen:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target", required=True)
    ap.add_argument("--mode", default="pass", choices=MODES)
    ap.add_argument("--ms", type=int, default=0)
    ap.add_argument("--bps", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=120)
    a = ap.parse_args()
    fp = FaultProxy(a.target, a.listen).start()
    fp.set(a.mode, ms=a.ms, bps=a.bps)
    print(fp.addr, flush=True)
    time.sleep(a.max_seconds)
    fp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
