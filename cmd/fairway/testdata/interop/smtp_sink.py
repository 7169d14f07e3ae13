#!/usr/bin/python3
"""A minimal SMTP sink on 127.0.0.1 for the interop suite (asyncio, not ours).

Accepts every message and writes it to OUTDIR/<n>.eml with the envelope in
OUTDIR/<n>.env. Usage: smtp_sink.py OUTDIR PORTFILE
"""
import asyncio
import os
import sys

count = 0


async def session(reader, writer):
    global count
    outdir = sys.argv[1]

    async def reply(line):
        writer.write((line + "\r\n").encode())
        await writer.drain()

    await reply("220 interop-sink ESMTP")
    mail_from, rcpts = "", []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                break
            cmd = line.decode(errors="replace").strip()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250-interop-sink\r\n250-8BITMIME\r\n250 PIPELINING")
            elif verb == "MAIL":
                mail_from, rcpts = cmd[10:].strip(), []
                await reply("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpts.append(cmd[8:].strip())
                await reply("250 2.1.5 ok")
            elif verb == "DATA":
                await reply("354 go ahead")
                data = b""
                while True:
                    chunk = await asyncio.wait_for(reader.readline(), 60)
                    if chunk in (b".\r\n", b""):
                        break
                    if chunk.startswith(b".."):
                        chunk = chunk[1:]
                    data += chunk
                count += 1
                base = os.path.join(outdir, "%06d" % count)
                with open(base + ".eml.tmp", "wb") as f:
                    f.write(data)
                with open(base + ".env", "w") as f:
                    f.write(mail_from + "\n" + "\n".join(rcpts) + "\n")
                os.rename(base + ".eml.tmp", base + ".eml")
                await reply("250 2.0.0 stored")
            elif verb == "RSET":
                mail_from, rcpts = "", []
                await reply("250 ok")
            elif verb == "NOOP":
                await reply("250 ok")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            else:
                await reply("502 5.5.2 not implemented")
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    portfile = sys.argv[2]
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
