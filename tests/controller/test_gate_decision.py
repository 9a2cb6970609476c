"""The pure out-gate decision (controller/gate.py)."""

from __future__ import annotations

from typing import Any

from controller.gate import DENY, OPEN, Scale, decide

ORDER: dict[str, Any] = {"order_id": "o-1", "lot": "LOT-1", "window_start_ms": 1000,
                         "window_end_ms": 9000, "expected_net_kg": 30000}
E20 = Scale(e_kg=20)


def _w(net: int = 30000, at: int = 5000, plate: str = "辽B12345") -> dict[str, Any]:
    return {"plate": plate, "net_kg": net, "time_ms": at}


def test_decide_order_within_tolerance_opens() -> None:
    d = decide(_w(30040), ORDER, None, E20)  # 1500e: in-service MPE 2e = 40 kg
    assert d.action == OPEN and d.reasons == ()
    assert d.body() == {"action": "open", "reasons": []}


def test_decide_net_beyond_tolerance_denies() -> None:
    d = decide(_w(30041), ORDER, None, E20)
    assert d.action == DENY
    assert [r.code for r in d.reasons] == ["net_out_of_tolerance"]
    assert "+41 kg" in d.reasons[0].text and "40 kg allowed" in d.reasons[0].text


def test_decide_no_order_denies() -> None:
    d = decide(_w(), None, None, E20)
    assert d.action == DENY and d.reasons[0].code == "no_open_order"


def test_decide_hold_denies_with_its_reason() -> None:
    d = decide(_w(), ORDER, {"reason": "fumigation"}, E20)
    assert d.action == DENY
    assert [r.code for r in d.reasons] == ["lot_on_hold"]
    assert "fumigation" in d.summary()


def test_decide_outside_window_denies() -> None:
    assert [r.code for r in decide(_w(at=9001), ORDER, None, E20).reasons] == ["outside_window"]
    assert decide(_w(at=9000), ORDER, None, E20).action == OPEN  # the window's ends count


def test_decide_every_reason_at_once() -> None:
    d = decide(_w(net=20000, at=1), ORDER, {"reason": "x"}, E20)
    assert [r.code for r in d.reasons] == ["outside_window", "lot_on_hold",
                                           "net_out_of_tolerance"]


def test_decide_uncheckable_net_denies() -> None:
    d = decide(_w(), ORDER, None, Scale(e_kg=0))
    assert d.action == DENY and d.reasons[0].code == "net_not_checkable"


def test_decide_summary_is_bounded() -> None:
    d = decide(_w(net=1), {**ORDER, "lot": "L" * 300}, {"reason": "y" * 300}, E20)
    assert len(d.summary()) == 200 and d.summary().endswith("…")
