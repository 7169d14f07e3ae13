#!/usr/bin/python3
"""Verify every DKIM signature of a message with dkimpy (not ours), looking
keys up in the zone file fairway's `dns records` produced.
Usage: dkim_verify.py ZONEFILE MESSAGE  -> prints one line per signature."""
import sys

import dkim
from dnslib import QTYPE, RR


def main():
    zone_path, msg_path = sys.argv[1], sys.argv[2]
    with open(zone_path) as f:
        rrs = RR.fromZone(f.read())

    def dnsfunc(name, timeout=5):
        want = name.decode() if isinstance(name, bytes) else name
        want = want.rstrip(".").lower()
        for rr in rrs:
            if rr.rtype == QTYPE.TXT and str(rr.rname).rstrip(".").lower() == want:
                return b"".join(rr.rdata.data)
        return None

    with open(msg_path, "rb") as f:
        msg = f.read()
    d = dkim.DKIM(msg)
    sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
    if not sigs:
        print("no DKIM-Signature")
        sys.exit(1)
    ok = True
    for i in range(len(sigs)):
        good = d.verify(idx=i, dnsfunc=dnsfunc)
        tags = dkim.util.parse_tag_value(sigs[i].replace(b"\r\n", b"").replace(b" ", b""))
        print("signature a=%s s=%s: %s" % (tags.get(b"a", b"?").decode(), tags.get(b"s", b"?").decode(),
                                           "pass" if good else "FAIL"))
        ok = ok and good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
