#!/usr/bin/env python3
"""A stand-in for cluster DNS, for tests/e2e/security/isolation_test.sh.

The real-mode cluster runs no DNS, but the environments' NetworkPolicy lets
their pods reach kube-system on port 53 (UDP and TCP). This server, run in a
kube-system pod, answers on both, so the test can show that names resolve from
an environment pod through that rule, and that the same pod's other ports are
closed to it (it also answers HTTP on 8080).

DNS: an A query for any name under patchgate.test. gets ANSWER_IP; any other
name gets NXDOMAIN. Only the standard library; stdout is the pod's log
("ready" once all three sockets listen, then one line per query).
Usage: dns_standin.py [ANSWER_IP]
"""
import socket
import socketserver
import struct
import sys
import threading

ANSWER_IP = sys.argv[1] if len(sys.argv) > 1 else "10.53.53.53"
ZONE = b"patchgate.test"


def parse_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return b".".join(labels), off + 1
        if n & 0xC0:  # compression pointer: queries do not use them
            raise ValueError("compressed name in a query")
        labels.append(msg[off + 1:off + 1 + n])
        off += 1 + n


def answer(query):
    """The response to one DNS query (bytes), or None if it is not a query."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    name, off = parse_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    known = name.lower() == ZONE or name.lower().endswith(b"." + ZONE)
    rd = flags & 0x0100
    if not known:
        flags_out, ancount, rr = 0x8400 | rd | 3, 0, b""  # NXDOMAIN
    elif qtype == 1 and qclass == 1:  # A IN
        flags_out, ancount = 0x8400 | rd, 1
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ANSWER_IP)
    else:  # the name exists, no record of that type
        flags_out, ancount, rr = 0x8400 | rd, 0, b""
    print(f"query {name.decode(errors='replace')} type {qtype}: "
          f"{'A ' + ANSWER_IP if ancount else ('no data' if known else 'NXDOMAIN')}", flush=True)
    return struct.pack("!HHHHHH", qid, flags_out, 1, ancount, 0, 0) + question + rr


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        out = answer(data)
        if out:
            sock.sendto(out, self.client_address)


class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return
        out = answer(self.rfile.read(struct.unpack("!H", head)[0]))
        if out:
            self.wfile.write(struct.pack("!H", len(out)) + out)


class Http(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        body = b"kube-system stand-in\n"
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


class ThreadingTcp(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    servers = [socketserver.ThreadingUDPServer(("0.0.0.0", 53), Udp),
               ThreadingTcp(("0.0.0.0", 53), Tcp),
               ThreadingTcp(("0.0.0.0", 8080), Http)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"ready: DNS on udp+tcp 53 (*.{ZONE.decode()} -> {ANSWER_IP}), HTTP on 8080", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
