#!/usr/bin/env python3
"""delay_proxy: a TCP proxy that adds a fixed delay to every HTTP request (lazy_bench.sh).

The kernel here has tbf but no netem, so the bench shapes the rate with tbf on a veth pair and
adds the per-request latency here: each client connection is forwarded byte for byte to the
upstream, and a read from the client that starts a new request (the connection's first read,
or the first read after the upstream has answered something) waits DELAY_MS before it is
forwarded. Keep-alive connections carrying several requests are delayed once per request.

Counters: a connection to --stats-port gets one line "down_bytes up_bytes requests" (bytes sent
to clients, bytes sent upstream, request heads seen) and is closed. --log gets one line per
request head: wall-clock time (s since the epoch, as `date +%s.%N`), connection number, bytes sent to clients so far (all
connections), method, path, Range header; and one line when a connection closes: time,
connection number, "end", bytes sent to this client, seconds the connection was open.

  delay_proxy.py --listen HOST:PORT --upstream HOST:PORT --delay-ms 20 --stats-port N --log FILE
"""
import argparse
import socket
import sys
import threading
import time


class Counters:
    def __init__(self, log):
        self.lock = threading.Lock()
        self.down = 0
        self.up = 0
        self.requests = 0
        self.log = log

    def add_down(self, n):
        with self.lock:
            self.down += n

    def add_up(self, n):
        with self.lock:
            self.up += n

    def closed(self, conn_no, down, seconds):
        if self.log:
            with self.lock:
                self.log.write(f"{time.time():.3f} {conn_no} end {down} {seconds:.3f}\n")
                self.log.flush()

    def request(self, conn_no, head):
        method, path, rng = "-", "-", "-"
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) >= 2:
            method, path = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        for line in lines[1:]:
            if line.lower().startswith(b"range:"):
                rng = line.split(b":", 1)[1].strip().decode("latin-1")
        with self.lock:
            self.requests += 1
            if self.log:
                self.log.write(f"{time.time():.3f} {conn_no} {self.down} "
                               f"{method} {path} {rng}\n")
                self.log.flush()


def pump_down(upstream, client, state, counters):
    """Upstream -> client; marks the connection as answered so the next request is delayed."""
    try:
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            state["answered"] = True
            state["down"] += len(data)
            client.sendall(data)
            counters.add_down(len(data))
    except OSError:
        pass
    finally:
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_connection(client, conn_no, args, counters):
    opened = time.monotonic()
    try:
        upstream = socket.create_connection(args.upstream)
    except OSError as e:
        print(f"delay_proxy: upstream {args.upstream}: {e}", file=sys.stderr)
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    state = {"answered": True, "down": 0}
    down = threading.Thread(target=pump_down, args=(upstream, client, state, counters), daemon=True)
    down.start()
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            if state["answered"]:
                # A new request head: it pays the link's latency once.
                state["answered"] = False
                counters.request(conn_no, data[:4096])
                time.sleep(args.delay_ms / 1000.0)
            upstream.sendall(data)
            counters.add_up(len(data))
        upstream.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    down.join()
    client.close()
    upstream.close()
    counters.closed(conn_no, state["down"], time.monotonic() - opened)


def serve_stats(port, host, counters):
    srv = socket.create_server((host, port), reuse_port=False)
    while True:
        conn, _ = srv.accept()
        with counters.lock:
            line = f"{counters.down} {counters.up} {counters.requests}\n"
        try:
            conn.sendall(line.encode())
        except OSError:
            pass
        conn.close()


def host_port(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=host_port, required=True)
    p.add_argument("--upstream", type=host_port, required=True)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--stats-port", type=int, required=True)
    p.add_argument("--log")
    args = p.parse_args()
    counters = Counters(open(args.log, "a") if args.log else None)
    threading.Thread(target=serve_stats, args=(args.stats_port, args.listen[0], counters),
                     daemon=True).start()
    srv = socket.create_server(args.listen)
    conn_no = 0
    while True:
        client, _ = srv.accept()
        conn_no += 1
        threading.Thread(target=serve_connection, args=(client, conn_no, args, counters),
                         daemon=True).start()


if __name__ == "__main__":
    main()
