# FAKE `ntptime` for tests (MicroPython): fails the first PLAN["fail"] times like a lost
# UDP reply (OSError ETIMEDOUT). Nothing here runs on a board.
host = "pool.ntp.org"
CALLS = []
PLAN = {"fail": 0}


def settime():
    CALLS.append(host)
    if len(CALLS) <= PLAN["fail"]:
        raise OSError(110)
