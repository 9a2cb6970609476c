"""Readable text for the exceptions the firmware logs: errno names, not ``OSError(111,)``.

    explain(OSError(111))                      "connection refused (ECONNREFUSED)"
    explain(OutboxError("write", OSError(5)))  "OutboxError: write, I/O error (EIO)"
    explain(KeyError("upto"))                  "KeyError: upto"

Names come from ``errno.errorcode`` (MicroPython's unix and ESP32 ports carry 22 of
them); the phrases are one string constant searched when a line is written, for the
errors a socket or the flash meets: a dict would keep its entries on the heap.
"""

from errno import errorcode

_PHRASES = ("ECONNREFUSED connection refused,ECONNRESET connection reset,ECONNABORTED "
            "connection aborted,ETIMEDOUT timed out,EHOSTUNREACH host unreachable,ENOTCONN "
            "not connected,EBADF closed,EIO I/O error,ENOENT no such file,ENOSPC no space left,")


def explain(exc):
    """One line saying what ``exc`` was."""
    a = exc.args
    if isinstance(exc, OSError) and a and type(a[0]) is int:  # a[0] is the errno
        # MicroPython's table lacks ENOSPC, the one a full flash raises
        name = errorcode.get(a[0]) or ("ENOSPC" if a[0] == 28 else "errno %d" % a[0])
        i = _PHRASES.find(name + " ")
        what = _PHRASES[i + len(name) + 1:_PHRASES.find(",", i)] if i >= 0 else "OS error"
        return "%s (%s)" % (what, name)
    if isinstance(exc, EOFError):  # MicroPython's says nothing; CPython's counts bytes
        return "closed by the peer (EOF)"
    text = type(exc).__name__
    sep = ": "
    for x in a:  # a loop, not a comprehension: that would be one more function on the heap
        # strip: mbedTLS's certificate errors come wrapped in newlines on MicroPython
        text += sep + (explain(x) if isinstance(x, Exception) else str(x).strip())
        sep = ", "
    return text
