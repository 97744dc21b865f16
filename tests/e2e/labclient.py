#!/usr/bin/env python3
"""labclient.py: the lab's clients, run inside a host's namespace
(ip netns exec NS python3 labclient.py ...); never outside one: the
addresses they talk to exist only in the lab.

	labclient.py loop --connect ADDR URL [--ca FILE] [--rate N]
		[--threads N] [--timeout S] [--seconds S] [--post]
		[--resume] [--out FILE]
	labclient.py probe [--timeout S] [--http] TARGET...

loop: requests URL (http:// or https://, its host name sent as Host and
SNI, the connection made to ADDR) from THREADS threads, RATE a second in
all, a new connection each, until SIGTERM or --seconds.  Each request
is a JSON line: t0, t1 (epoch seconds), thread, status (0: no answer),
err, lb (X-Balancer), web (X-Served-By), resumed (TLS session resumed),
and with --post (a note, POST to URL) the note's id and text.  With
--resume each thread offers the TLS session of its last answer.

probe: for each TARGET, host:port[/path], whether a TCP connection is
accepted ("open"), refused ("refused") or unanswered ("timeout"); with
--http, on an open one, the answer to GET path: "http NNN", "closed"
(closed without a word), "reset", or "answered, not HTTP".  Prints a
JSON object."""
import argparse
import json
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse


def request(addr, url, method="GET", body=None, ctx=None, session=None,
            timeout=1.0):
    """One request on a new connection: (status, headers, body, tls),
    tls None on plain HTTP, else (session, whether it was resumed).
    Raises OSError on a failure to connect or to read."""
    u = urllib.parse.urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    s = socket.create_connection((addr, port), timeout=timeout)
    # as browsers and curl: no Nagle (a resumed TLS handshake would wait
    # for the server's delayed ACK before the request goes)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if u.scheme == "https":
            s = ctx.wrap_socket(s, server_hostname=u.hostname,
                                session=session)
        path = u.path + ("?" + u.query if u.query else "")
        head = (f"{method} {path or '/'} HTTP/1.1\r\nHost: {u.hostname}\r\n"
                "Connection: close\r\nUser-Agent: labclient\r\n")
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += ("Content-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n")
        s.sendall(head.encode() + b"\r\n" + data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        if not buf:
            raise ConnectionError("closed without an answer")
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            out, r = b"", rest
            while r:
                n, _, r = r.partition(b"\r\n")
                n = int(n.split(b";")[0], 16)
                if n == 0:
                    break
                out, r = out + r[:n], r[n + 2:]
            rest = out
        tls = (s.session, s.session_reused) if u.scheme == "https" \
            else None
        return status, hdrs, rest, tls
    finally:
        s.close()


def cmd_loop(a):
    ctx = None
    if a.url.startswith("https"):
        ctx = ssl.create_default_context(cafile=a.ca)
    out = open(a.out, "a") if a.out else sys.stdout
    lock = threading.Lock()
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    signal.signal(signal.SIGINT, lambda *_: halt.set())
    gap = a.threads / a.rate
    end = time.time() + a.seconds
    seq = [0]

    def worker(k):
        session = None
        nxt = time.monotonic() + k * gap / a.threads
        while not halt.is_set() and time.time() < end:
            w = nxt - time.monotonic()
            if w > 0:
                if halt.wait(w):
                    break
            nxt = max(nxt + gap, time.monotonic())
            rec = {"thread": k, "status": 0, "err": None}
            body = None
            if a.post:
                with lock:
                    seq[0] += 1
                    rec["text"] = f"lab t{k} n{seq[0]} {time.time():.3f}"
                body = {"text": rec["text"], "author": "lab"}
            rec["t0"] = time.time()
            try:
                st, h, data, tls = request(
                    a.connect, a.url, "POST" if a.post else "GET", body,
                    ctx, session if a.resume else None, a.timeout)
                rec["status"] = st
                rec["lb"] = h.get("x-balancer")
                rec["web"] = h.get("x-served-by")
                if tls is not None:
                    session, rec["resumed"] = tls
                if a.post and st == 201:
                    rec["id"] = json.loads(data)["id"]
                elif st >= 400:
                    rec["err"] = data[:200].decode(errors="replace")
            except (OSError, ValueError, IndexError, KeyError) as e:
                rec["err"] = f"{type(e).__name__}: {e}"
            rec["t1"] = time.time()
            with lock:
                try:
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                except BrokenPipeError:
                    halt.set()

    ts = [threading.Thread(target=worker, args=(k,), daemon=True)
          for k in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        while t.is_alive():
            t.join(0.2)
    out.flush()


def probe_one(target, timeout, http):
    hostport, _, path = target.partition("/")
    host, _, port = hostport.rpartition(":")
    try:
        s = socket.create_connection((host, int(port)), timeout=timeout)
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error {e.strerror or e}"
    if not http:
        s.close()
        return "open"
    try:
        s.settimeout(timeout * 2)
        s.sendall(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n"
                  "Connection: close\r\n\r\n".encode())
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
        if not buf:
            return "closed"
        if not buf.startswith(b"HTTP/"):
            return "answered, not HTTP"
        return "http " + buf.split(b" ", 2)[1].decode()
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "open, no answer"
    except OSError as e:
        return f"error {e.strerror or e}"
    finally:
        s.close()


def cmd_probe(a):
    res = {}
    ts = []
    for t in a.targets:
        th = threading.Thread(target=lambda t=t: res.__setitem__(
            t, probe_one(t, a.timeout, a.http)))
        th.start()
        ts.append(th)
    for th in ts:
        th.join()
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("loop")
    lp.add_argument("url")
    lp.add_argument("--connect", required=True)
    lp.add_argument("--ca")
    lp.add_argument("--rate", type=float, default=40)
    lp.add_argument("--threads", type=int, default=4)
    lp.add_argument("--timeout", type=float, default=1.0)
    lp.add_argument("--seconds", type=float, default=300)
    lp.add_argument("--post", action="store_true")
    lp.add_argument("--resume", action="store_true")
    lp.add_argument("--out")
    pp = sub.add_parser("probe")
    pp.add_argument("--timeout", type=float, default=1.0)
    pp.add_argument("--http", action="store_true")
    pp.add_argument("targets", nargs="+")
    a = ap.parse_args()
    if a.cmd == "loop":
        cmd_loop(a)
    else:
        cmd_probe(a)


if __name__ == "__main__":
    main()
