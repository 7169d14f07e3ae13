#!/usr/bin/python3
"""Authoritative DNS on 127.0.0.1 for the interop suite (dnslib, not ours).

Answers from a zone file re-read on every query, so the suite can publish
the lines `fairway dns records` prints and see fairway find them.
Usage: dns_server.py ZONEFILE PORTFILE
"""
import sys
import time

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, path):
        self.path = path

    def resolve(self, request, handler):
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        try:
            with open(self.path) as f:
                rrs = RR.fromZone(f.read())
        except FileNotFoundError:
            rrs = []
        names = {str(rr.rname).lower() for rr in rrs}
        for rr in rrs:
            if str(rr.rname).lower() == str(qname).lower() and (qtype == QTYPE.ANY or rr.rtype == qtype):
                reply.add_answer(rr)
        if not reply.rr and str(qname).lower() not in names:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main():
    zone, portfile = sys.argv[1], sys.argv[2]
    server = DNSServer(ZoneResolver(zone), port=0, address="127.0.0.1")
    server.start_thread()
    port = server.server.server_address[1]
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    import os
    os.rename(portfile + ".tmp", portfile)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
