"""The weighbridge emulator, read through pymodbus' own client and the register map codec."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from protocols import registermap
from tools.emulators import ControlError, EmulatorError
from tools.emulators.weighbridge import (
    MAPS_DIR,
    ControlClient,
    FastClock,
    Timing,
    Truck,
    WeighbridgeEmulator,
    emulator_from_args,
    load_map,
    map_table,
    parse_args,
    random_truck,
    spawn,
)

FAST = Timing(ramp_s=0.3, settle_s=0.3, stable_s=0.6, leave_s=0.3, gap_s=0.05)
Sample = dict[str, Any]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def connect(wb: WeighbridgeEmulator, **options: Any) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=wb.modbus_port, **options)
    assert await client.connect()
    return client


async def read_block(client: AsyncModbusTcpClient, regmap: dict[str, Any]) -> Any:
    read = (client.read_holding_registers if regmap["function"] == 3
            else client.read_input_registers)
    return await read(regmap["start"], count=regmap["count"], device_id=1)


async def sample_until(client: AsyncModbusTcpClient, regmap: dict[str, Any],
                       done: Callable[[list[Sample]], bool], timeout: float = 10.0
                       ) -> list[Sample]:
    """Read and decode the block over and over until ``done(samples)`` holds."""
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout
    while not samples or not done(samples):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last samples: {samples[-3:]}")
        response = await read_block(client, regmap)
        assert not response.isError(), response
        samples.append(registermap.decode(regmap, response.registers))
        await asyncio.sleep(0.01)  # polling pace, not synchronisation
    return samples


def is_empty(sample: Sample) -> bool:
    return bool(sample["gross_kg"] == 0 and sample["plate"] == ""
                and sample["status"]["zero"] and sample["status"]["stable"])


def left_after_stable(samples: list[Sample]) -> bool:
    return any(s["status"]["stable"] and s["plate"] for s in samples) and is_empty(samples[-1])


def test_truck_crossing_shows_ramp_then_exact_stable_weight_then_empty() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST, noise_e=0) as wb:
            client = await connect(wb)
            wb.add_truck(Truck("辽B12345", 15_000, 30_120))
            samples = await sample_until(client, wb.regmap, left_after_stable)
            client.close()
        ramp = [s for s in samples if s["position"]["entry_blocked"]]
        assert ramp and all(s["status"]["motion"] and not s["status"]["stable"] for s in ramp)
        assert any(0 < s["gross_kg"] < 45_120 for s in ramp)
        stable = [s for s in samples if s["status"]["stable"] and s["plate"]]
        assert {(s["gross_kg"], s["tare_kg"], s["net_kg"], s["plate"]) for s in stable} == {
            (45_120, 15_000, 30_120, "辽B12345")}
        assert all(s["status"]["net_mode"] and not s["status"]["motion"] for s in stable)
        assert samples.index(ramp[0]) < samples.index(stable[0])
        assert any(s["position"]["exit_blocked"] for s in samples[samples.index(stable[-1]):])
        assert all(s["gross_kg"] % 20 == 0 for s in samples)

    run(scenario())


def test_float32_map_is_served_on_input_registers_in_exact_tonnes() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("float32-le-sim", timing=FAST) as wb:
            client = await connect(wb)
            wb.add_truck(Truck("辽B7K3Q9", 14_950, 31_050))
            samples = await sample_until(client, wb.regmap, left_after_stable)
            wrong_function = await client.read_holding_registers(100, count=18, device_id=1)
            client.close()
        stable = [s for s in samples if s["status"]["stable"] and s["plate"]]
        assert {(s["gross_kg"], s["net_kg"], s["tare_kg"]) for s in stable} == {
            (46_000, 31_050, 14_950)}
        assert isinstance(stable[0]["gross_kg"], int)
        assert wrong_function.isError() and wrong_function.exception_code == 1

    run(scenario())


def test_reads_logs_the_time_of_every_register_read_for_poll_gap_checks() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            before = wb.clock.time()
            for _ in range(3):
                await read_block(client, wb.regmap)
            wb.inject("exception", code=6, count=1)
            await read_block(client, wb.regmap)  # refused, but polled all the same
            client.close()
            times = wb.handle_command({"cmd": "reads", "since": before})["reads"]
            assert len(times) == 4 and times == sorted(times) and times[0] > before
            assert wb.handle_command({"cmd": "reads", "since": times[1]})["reads"] == \
                times[2:]
            with pytest.raises(EmulatorError):
                wb.handle_command({"cmd": "reads", "since": "yesterday"})

    run(scenario())


def test_exception_fault_answers_with_the_modbus_exception_code() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            wb.inject("exception", code=6, count=2)
            replies = [await read_block(client, wb.regmap) for _ in range(3)]
            client.close()
            assert wb.exceptions_sent == 2
        assert [r.isError() for r in replies] == [True, True, False]
        assert [r.exception_code for r in replies[:2]] == [6, 6]
        assert len(replies[2].registers) == 24

    run(scenario())


def test_timeout_fault_leaves_the_request_unanswered() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb, timeout=0.5, retries=0)
            wb.inject("timeout", count=1)
            with pytest.raises(ModbusIOException):
                await read_block(client, wb.regmap)
            after = await read_block(client, wb.regmap)
            client.close()
            assert wb.replies_dropped == 1
        assert not after.isError()

    run(scenario())


def test_writes_are_refused_like_a_read_only_indicator() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            reply = await client.write_register(2, 999, device_id=1)
            block = await read_block(client, wb.regmap)
            client.close()
        assert reply.isError() and reply.exception_code == 2
        assert block.registers[2:4] == [0, 0]

    run(scenario())


async def wait_phase(wb: WeighbridgeEmulator, phase: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while wb.phase() != phase:
        assert time.monotonic() < deadline, f"no {phase} phase; now {wb.phase()}"
        await asyncio.sleep(0.01)


def test_barrier_coil_opened_and_closed_on_the_deck_is_logged_with_the_visit() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            wb.add_truck(Truck("辽B00010", 15_000, 30_000))
            wb.add_truck(Truck("辽B00011", 16_000, 30_000, gap_s=0.2))
            await wait_phase(wb, "stable")
            opened = await client.write_coil(0, True, device_id=1)
            readback = await client.read_coils(0, count=1, device_id=1)
            status = wb.status()["barrier"]
            await wait_phase(wb, "leave")
            closed = await client.write_coil(0, False, device_id=1)
            visits = await wb.wait_visits(2, timeout=10)
            client.close()
        assert not opened.isError() and opened.bits[0] is True
        assert readback.bits[0] is True
        assert status == {"coil": 0, "open": True, "writes": 1}
        first, second = (v.to_json() for v in visits)
        assert first["stable_from"] <= first["barrier_opened_ts"] <= first["stable_until"]
        assert [on for _, on in first["barrier_writes"]] == [True, False]
        assert first["barrier_writes"][0][0] == first["barrier_opened_ts"]
        assert not closed.isError()
        # the barrier was shut before the second truck came: it never opened for it
        assert second["barrier_opened_ts"] is None and second["barrier_writes"] == []

    run(scenario())


def test_barrier_left_open_counts_as_open_from_the_next_trucks_arrival() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("float32-le-sim", timing=FAST) as wb:
            client = await connect(wb)
            reply = await client.write_coil(2, True, device_id=1)  # deck empty
            wb.add_truck(Truck("辽B00012", 15_000, 30_000))
            [visit] = await wb.wait_visits(1, timeout=10)
            client.close()
        assert not reply.isError() and wb.coil_writes == 1
        assert visit.barrier_opened_ts == visit.arrived and visit.barrier_writes == ()

    run(scenario())


def test_other_coils_are_refused_and_a_map_without_a_barrier_has_none() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            other = await client.write_coil(1, True, device_id=1)
            read_other = await client.read_coils(5, count=1, device_id=1)
            client.close()
            assert not wb.barrier_open and wb.coil_writes == 0
        assert other.isError() and other.exception_code == 2
        assert read_other.isError() and read_other.exception_code == 2
        no_barrier = {k: v for k, v in load_map("portwatch-sim").items() if k != "coils"}
        async with WeighbridgeEmulator(no_barrier, timing=FAST) as wb:
            client = await connect(wb)
            refused = await client.write_coil(0, True, device_id=1)
            wb.add_truck(Truck("辽B00013", 15_000, 30_000))
            [visit] = await wb.wait_visits(1, timeout=10)
            client.close()
            assert wb.status()["barrier"] == {"coil": None, "open": False, "writes": 0}
        assert refused.isError() and refused.exception_code == 2
        assert visit.barrier_opened_ts is None

    run(scenario())


def test_a_silent_emulator_neither_answers_nor_takes_a_barrier_write() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb, timeout=0.3, retries=0)
            wb.inject("timeout", seconds=0.5)
            with pytest.raises(ModbusIOException):
                await client.write_coil(0, True, device_id=1)
            client.close()
            assert not wb.barrier_open and wb.replies_dropped == 1

    run(scenario())


def test_wheels_off_truck_shows_side_sensor_and_short_weight_while_stable() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            client = await connect(wb)
            wb.add_truck(Truck("辽B00001", 16_000, 30_000, scenario="wheels_off_right"))
            samples = await sample_until(client, wb.regmap, left_after_stable)
            client.close()
            visit = wb.visits[0]
        stable = [s for s in samples if s["status"]["stable"] and s["plate"]]
        assert all(s["position"]["deck_right_blocked"] for s in stable)
        assert not any(s["position"]["deck_left_blocked"] for s in samples)
        assert {s["gross_kg"] for s in stable} == {46_000 - 4_600}
        assert (visit.gross_kg, visit.shown_gross_kg) == (46_000, 41_400)

    run(scenario())


def test_never_stable_truck_leaves_without_the_stable_bit() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST, noise_e=0) as wb:
            client = await connect(wb)
            wb.add_truck(Truck("辽B00002", 15_000, 20_000, scenario="never_stable"))

            def crossed(samples: list[Sample]) -> bool:
                return any(s["plate"] for s in samples) and is_empty(samples[-1])

            samples = await sample_until(client, wb.regmap, crossed)
            client.close()
            visit = wb.visits[0]
        on_deck = [s for s in samples if s["plate"]]
        assert on_deck and not any(s["status"]["stable"] for s in on_deck)
        assert visit.stable_from is None and visit.shown_gross_kg is None

    run(scenario())


def test_flag_faults_raise_overload_setup_and_remote_calibration_bits() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("float32-le-sim", timing=FAST) as wb:
            client = await connect(wb)
            before = registermap.decode(wb.regmap, (await read_block(client, wb.regmap)).registers)
            for kind in ("overload", "setup", "remote_cal"):
                wb.inject(kind)
            on = registermap.decode(wb.regmap, (await read_block(client, wb.regmap)).registers)
            wb.inject("setup", on=False)
            wb.inject("overload", seconds=0.0)
            later = registermap.decode(wb.regmap, (await read_block(client, wb.regmap)).registers)
            client.close()
        assert not any(before["status"][k] for k in ("overload", "setup", "remote_cal"))
        assert all(on["status"][k] for k in ("overload", "setup", "remote_cal"))
        assert later["status"]["remote_cal"] and not later["status"]["setup"]
        assert not later["status"]["overload"]

    run(scenario())


def test_trucks_queue_and_cross_one_at_a_time() -> None:
    async def scenario() -> None:
        async with WeighbridgeEmulator("portwatch-sim", timing=FAST) as wb:
            wb.add_truck(Truck("辽B00003", 15_000, 30_000))
            assert wb.add_truck(Truck("辽B00004", 17_000, 28_000)) == 2
            visits = await wb.wait_visits(2, timeout=10)
        assert [v.plate for v in visits] == ["辽B00003", "辽B00004"]
        assert visits[1].arrived >= visits[0].left
        assert [v.seq for v in visits] == [1, 2]

    run(scenario())


def test_bad_trucks_and_faults_are_refused_with_a_reason() -> None:
    wb = WeighbridgeEmulator("portwatch-sim")
    with pytest.raises(EmulatorError, match="multiples of the division e = 20"):
        wb.add_truck(Truck("辽B12345", 15_010, 30_000))
    with pytest.raises(EmulatorError, match="does not fit"):
        wb.add_truck(Truck("辽B" + "1" * 20, 15_000, 30_000))
    with pytest.raises(EmulatorError, match="unknown scenario"):
        wb.add_truck(Truck("辽B12345", 15_000, 30_000, scenario="teleport"))
    with pytest.raises(EmulatorError, match="no Modbus exception code 9"):
        wb.inject("exception", code=9)
    with pytest.raises(EmulatorError, match="unknown fault"):
        wb.inject("gremlins")
    assert wb.queued == 0


def test_random_trucks_look_like_dalian_trucks_that_fit_the_scale() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        truck = random_truck(rng, 50, 100_000)
        assert re.fullmatch(r"辽B[A-HJ-NP-Z0-9]{5}", truck.plate), truck.plate
        assert truck.tare_kg % 50 == 0 and truck.net_kg % 50 == 0
        assert 12_000 <= truck.tare_kg <= 20_000 and truck.net_kg > 0
        assert truck.gross_kg <= 100_000


def test_control_port_drives_a_subprocess_and_logs_the_exact_visit() -> None:
    args = ("--map", "portwatch-sim", "--ramp-s", "0.2", "--settle-s", "0.2",
            "--stable-s", "0.4", "--leave-s", "0.2", "--gap-s", "0.05")
    with spawn(*args) as emulator:
        client = emulator.client
        assert emulator.map_name == "portwatch-sim"
        assert set(client.send("help")["commands"]) >= {"truck", "auto", "fault", "log"}
        client.truck("辽B12345", 15_000, 30_120)
        client.auto(2, interval_s=0.05)
        visits = client.wait_visits(3, timeout=20)
        status = client.wait_idle(timeout=10)
        with pytest.raises(ControlError, match="unknown cmd 'fly'"):
            client.send("fly")
        with pytest.raises(ControlError, match="needs 'tare_kg' as int"):
            client.send("truck", plate="辽B1", tare_kg="heavy", net_kg=1)
        assert client.log(since=2) == visits[2:]
    first = visits[0]
    assert (first["plate"], first["gross_kg"], first["tare_kg"], first["net_kg"]) == (
        "辽B12345", 45_120, 15_000, 30_120)
    assert first["stable_from"] < first["stable_until"] < first["left"]
    assert first["stable_until"] - first["stable_from"] == pytest.approx(0.4)
    assert all(re.fullmatch(r"辽B\w{5}", v["plate"]) for v in visits[1:])
    assert status["visits"] == 3 and status["reading"]["gross_kg"] == 0


def test_control_client_says_when_no_emulator_listens() -> None:
    from tools.procs import free_port

    with pytest.raises(ControlError, match="is the emulator running"):
        ControlClient(free_port(), timeout=1).status()


def test_readme_documents_every_bundled_map() -> None:
    readme = (MAPS_DIR / "README.md").read_text(encoding="utf-8")
    maps = sorted(MAPS_DIR.glob("*.json"))
    assert len(maps) >= 2
    for path in maps:
        table = map_table(load_map(path.stem))
        assert table in readme, f"README.md is out of date for {path.name}: run --print-map"


def test_bundled_maps_load_through_the_codec_as_well() -> None:
    for path in sorted(Path(MAPS_DIR).glob("*.json")):
        assert registermap.load(str(path)) == load_map(str(path))


# ---------------------------------------------------------------- the arrival schedule, fast


DEMO_LIKE = Timing(ramp_s=1.5, settle_s=1.5, stable_s=3.0, leave_s=1.5, gap_s=1.0)


def arrivals_of(count: int, clock: FastClock, timing: Timing = DEMO_LIKE,
                **auto: Any) -> list[float]:
    """Queue ``count`` random trucks on a fast clock; their arrival times from the visit log."""
    async def scenario() -> list[float]:
        wb = WeighbridgeEmulator("portwatch-sim", timing=timing, seed=1, clock=clock)
        wb.add_random_trucks(count, **auto)
        async with wb:
            visits = await wb.wait_visits(count, timeout=10)
        return [v.arrived for v in visits]

    return asyncio.run(scenario())


def spacing(arrivals: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(arrivals)]


def test_every_s_makes_trucks_arrive_exactly_that_far_apart() -> None:
    arrivals = arrivals_of(50, FastClock(), every_s=12.0)
    assert spacing(arrivals) == [12.0] * 49


def test_late_wake_ups_do_not_make_the_arrivals_drift() -> None:
    # every sleep wakes 50 ms late (a loaded machine): arrivals still keep the period
    arrivals = arrivals_of(50, FastClock(late_s=0.05), every_s=9.0)
    assert spacing(arrivals) == [9.0] * 49


def test_interval_s_is_empty_deck_time_so_arrivals_are_a_crossing_further_apart() -> None:
    arrivals = arrivals_of(10, FastClock(), interval_s=2.0)
    assert DEMO_LIKE.crossing_s == 7.5
    assert spacing(arrivals) == [9.5] * 9


def test_every_s_shorter_than_a_crossing_plus_the_gap_is_refused_with_the_sums() -> None:
    wb = WeighbridgeEmulator("portwatch-sim", timing=DEMO_LIKE)
    with pytest.raises(EmulatorError, match=r"cannot arrive every 8 s: a crossing takes 7.5 s"
                                            r".* at least 8.5 s"):
        wb.add_random_trucks(3, every_s=8.0)
    with pytest.raises(EmulatorError, match="not both"):
        wb.add_random_trucks(3, every_s=10.0, interval_s=1.0)
    assert wb.queued == 0


def test_command_line_auto_every_queues_trucks_on_that_period() -> None:
    args = parse_args(["--ramp-s", "1", "--settle-s", "1", "--stable-s", "2", "--leave-s", "1",
                       "--gap-s", "0.5", "--auto", "8", "--auto-every", "6",
                       "--scenario", "wheels_off_left"])
    clock = FastClock()

    async def scenario() -> list[Any]:
        async with emulator_from_args(args, clock=clock) as wb:
            return await wb.wait_visits(8, timeout=10)

    visits = asyncio.run(scenario())
    assert spacing([v.arrived for v in visits]) == [6.0] * 7
    assert {v.scenario for v in visits} == {"wheels_off_left"}
    with pytest.raises(EmulatorError, match="give --auto too"):
        emulator_from_args(parse_args(["--auto-every", "6"]))
    with pytest.raises(SystemExit):  # argparse: one or the other
        parse_args(["--auto", "2", "--auto-every", "6", "--auto-interval", "1"])
