"""Log text for exceptions (edge.explain): the same words under pytest and MicroPython."""

from edge.explain import explain
from edge.net.mqtt import ConnectionLost
from edge.outbox import OutboxError


def test_explain_oserror_by_phrase_and_errno_name():
    assert explain(OSError(111, "Connection refused")) == "connection refused (ECONNREFUSED)"
    assert explain(OSError(104)) == "connection reset (ECONNRESET)"
    assert explain(OSError(110)) == "timed out (ETIMEDOUT)"
    assert explain(OSError(28)) == "no space left (ENOSPC)"  # not in MicroPython's table


def test_explain_oserror_without_a_phrase_or_a_name():
    assert explain(OSError(22)) == "OS error (EINVAL)"
    assert explain(OSError(999)) == "OS error (errno 999)"
    assert explain(OSError("closed")) == "OSError: closed"


def test_explain_names_nested_errors_and_plain_ones():
    assert explain(OutboxError("write", OSError(5))) == "OutboxError: write, I/O error (EIO)"
    assert explain(ConnectionLost("link down: x")) == "ConnectionLost: link down: x"
    assert explain(KeyError("upto")) == "KeyError: upto"
    assert explain(MemoryError()) == "MemoryError"
    assert explain(EOFError()) == "closed by the peer (EOF)"
