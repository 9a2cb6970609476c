"""A tiny HTTP/1.1 GET for firmware downloads (edge/ota.py), loaded only while updating.

``get(host, port, path, sink, first=0, last=None, until=None)``: one request, ``Range:
bytes=first-last`` when ``first`` or ``last`` is given, ``Connection: close``; the body
goes to ``sink(chunk)`` piece by piece as it arrives (nothing is held: a 96 KiB heap next
to a running agent). Returns the body's byte count; raises OSError with the status for
anything but 200 / 206, and EOFError when the body ends short of its Content-Length.
Plain HTTP: the bundle is authenticated by its signed manifest, not by the transport.
"""

from edge.net.sock import open_socket, recv, send

HEAD_MAX = 1024


async def get(host, port, path, sink, first=0, last=None, until=None):
    s = open_socket(host, port)
    try:
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (path, host, port)
        if first or last is not None:
            req += "Range: bytes=%d-%s\r\n" % (first, "" if last is None else last)
        await send(s, (req + "\r\n").encode(), until)
        head = b""
        while b"\r\n\r\n" not in head:
            if len(head) > HEAD_MAX:
                raise OSError("http: response head over %d bytes" % HEAD_MAX)
            head += await recv(s, 256, until)
        head, body = head.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        if status not in (200, 206):
            raise OSError("http %d for %s" % (status, path.split("?")[0]))
        size = None
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.lower() == "content-length":
                size = int(v)
        got = 0
        while True:
            if body:
                got += len(body)
                sink(body)
            if size is not None and got >= size:
                return got
            try:
                body = await recv(s, 512, until)
            except EOFError:
                if size is None:
                    return got
                raise EOFError("http: body ended at %d of %d bytes" % (got, size))
    finally:
        s.close()
