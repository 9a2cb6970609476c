"""trip_corridor judges fixes that report no satellites and no HDOP (both 0): a JT/T 808
terminal sends satellites only as the optional 0x31 extra and never an HDOP, so its
fixes reach the rule as ``[..., 0, 0]`` (controller/gateways/jtt808_events.fix)."""

from __future__ import annotations

from trip_timeline import MIN, T0, alerts, departure, drive, positions, run

from controller.supervision.rules import trip_corridor


def _unreported(fixes: list[list[int]]) -> list[list[int]]:
    for f in fixes:
        f[5], f[6] = 0, 0
    return fixes


def test_corridor_detour_without_sats_or_hdop_is_judged() -> None:
    batches = [positions(1, _unreported(drive([1, 2, 3]))),
               positions(2, _unreported(drive([4, 5, 6], east=400))),
               positions(3, _unreported(drive([7, 8, 9])))]
    _, found = run(trip_corridor, [departure(), *batches])
    assert alerts(found) == [("corridor_deviation", True), ("corridor_deviation", False)]
    assert found[0].detail["from_ts"] == T0 + 4 * MIN  # type: ignore[attr-defined]


def test_corridor_few_reported_sats_still_not_judged() -> None:
    poor = drive([4, 5, 6], east=700)
    for f in poor:
        f[5] = 3  # three satellites, reported: multipath, not a detour
    _, found = run(trip_corridor, [departure(), positions(1, drive([1, 2, 3])),
                                   positions(2, poor), positions(3, drive([7, 8, 9]))])
    assert found == []
