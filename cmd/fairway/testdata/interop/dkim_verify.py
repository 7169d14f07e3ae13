#!/usr/bin/python3
"""Verify every DKIM signature of a message with dkimpy (not ours), looking
keys up in the zone file fairway's `dns records` produced.
Usage: dkim_verify.py [-q] ZONEFILE MESSAGE...  -> one line per signature
(-q: only failures and a count). Exits 1 if any message has no signature
or any signature fails."""
import sys

import dkim
from dnslib import QTYPE, RR


def main():
    args = sys.argv[1:]
    quiet = args[:1] == ["-q"]
    if quiet:
        args = args[1:]
    zone_path, msg_paths = args[0], args[1:]
    with open(zone_path) as f:
        rrs = RR.fromZone(f.read())
    txt = {}
    for rr in rrs:
        if rr.rtype == QTYPE.TXT:
            txt.setdefault(str(rr.rname).rstrip(".").lower(), b"".join(rr.rdata.data))

    def dnsfunc(name, timeout=5):
        want = name.decode() if isinstance(name, bytes) else name
        return txt.get(want.rstrip(".").lower())

    ok, checked = True, 0
    for msg_path in msg_paths:
        with open(msg_path, "rb") as f:
            msg = f.read()
        d = dkim.DKIM(msg)
        sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
        if not sigs:
            print("%s: no DKIM-Signature" % msg_path)
            ok = False
            continue
        for i in range(len(sigs)):
            good = d.verify(idx=i, dnsfunc=dnsfunc)
            tags = dkim.util.parse_tag_value(sigs[i].replace(b"\r\n", b"").replace(b" ", b""))
            if not quiet or not good:
                print("%s: signature a=%s s=%s: %s" % (msg_path, tags.get(b"a", b"?").decode(),
                                                       tags.get(b"s", b"?").decode(), "pass" if good else "FAIL"))
            ok = ok and good
        checked += 1
    print("%d message(s) checked" % checked)
    sys.exit(0 if ok and checked > 0 else 1)


if __name__ == "__main__":
    main()
