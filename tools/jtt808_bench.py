"""How many JT/T 808 reports a second the gateway answers: ``python -m tools.jtt808_bench``.

A real Mosquitto (logins and ACL from the registry, in clear), the gateway in this
process, N emulated terminals each sending M location reports (one fix each) as fast as
the answers come; no controller (the outbox only grows). Prints JSON: reports answered
per second and the answer time per report (median, p95, max). Each answer waits for the
gateway's outbox commit (``synchronous=FULL``: an fsync) and the broker's PUBACK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controller import registry
from controller.gateways import accounts
from controller.gateways.jtt808 import Gateway
from controller.gateways.jtt808_uplink import Uplink
from controller.ingest.service import BrokerSettings
from controller.storage import open_store
from protocols import jtt808
from tools.rig import Rig

T0 = 1_796_083_200_000


async def _terminal(port: int, phone: str, reports: int, times: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    splitter = jtt808.Splitter()

    async def answer() -> dict[str, Any]:
        while True:
            data = await reader.read(4096)
            if not data:
                raise ConnectionError("the gateway closed the connection")
            for item in splitter.feed(data):
                if isinstance(item, jtt808.Frame):
                    if item.msg_id == jtt808.REGISTER_ANSWER:
                        return jtt808.decode_register_answer(item.body)
                    return jtt808.decode_answer(item.body)

    writer.write(jtt808.encode_frame(jtt808.REGISTER, phone, 1, jtt808.encode_register(
        {"province": 21, "city": 200, "maker": "B", "model": "B", "terminal_id": "B",
         "plate_color": 2, "plate": b"B"})))
    code = (await answer())["auth_code"]
    writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, phone, 2, code))
    await answer()
    for i in range(reports):
        body = jtt808.encode_location({"alarm": 0, "status": 3, "lat_e6": 38930000 + i,
                                       "lon_e6": 121650000, "speed_dkmh": 300, "course": 90,
                                       "ts_ms": T0 + i * 1000})
        start = time.perf_counter()
        writer.write(jtt808.encode_frame(jtt808.LOCATION, phone, 3 + i, body))
        result = await answer()
        times.append(time.perf_counter() - start)
        if result["result"] != jtt808.OK:
            raise RuntimeError(f"report {i} of {phone} answered {result}")
    writer.close()


async def _run(rig: Rig, phones: list[str], reports: int, state: Path) -> dict[str, Any]:
    store = open_store(rig.db_path)
    user, password = accounts.credentials(store)
    store.close()
    uplink = Uplink(store_path=rig.db_path, state_path=state, site=rig.site,
                    broker=BrokerSettings(host="127.0.0.1", port=rig.broker.port,
                                          username=user, password=password))
    gateway = Gateway(uplink, site=rig.site)
    port = await gateway.start("127.0.0.1", 0)
    task = asyncio.create_task(uplink.run())
    try:
        while not uplink.stats.connected:
            await asyncio.sleep(0.05)
        times: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(*(_terminal(port, p, reports, times) for p in phones))
        elapsed = time.perf_counter() - start
    finally:
        await gateway.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        uplink.close()
    times.sort()
    return {"terminals": len(phones), "reports_each": reports, "seconds": round(elapsed, 2),
            "reports_per_s": round(len(times) / elapsed, 1),
            "answer_ms_median": round(statistics.median(times) * 1000, 2),
            "answer_ms_p95": round(times[int(len(times) * 0.95)] * 1000, 2),
            "answer_ms_max": round(times[-1] * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=10)
    parser.add_argument("--reports", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp) / "site", tls=False)
        rig.broker.start()
        try:
            phones = [f"1380000{i:04d}" for i in range(args.terminals)]
            for phone in phones:
                store = open_store(rig.db_path)
                registry.provision(store, device_id=f"jt-{phone}", site=rig.site, kind="gps")
                store.close()
            store = open_store(rig.db_path)
            login = accounts.credentials(store)
            store.close()
            rig.refresh_broker(probe=login)
            doc = asyncio.run(_run(rig, phones, args.reports, Path(tmp) / "gw.db"))
        finally:
            rig.broker.stop()
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
