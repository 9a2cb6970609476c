"""A train's passage against its manifest (matched by controller/trains.py before the
rules run: ``train_id``, ``manifest`` and ``held_lots`` in the body).

Alerts, subject ``<train>/<initial><number>`` per car (``<train>`` is the manifest's id,
or ``<reader>/<seq>`` for a passage that matched none):

- ``rail_car_missing`` (warning): a manifest car no tag was read from; when the passage
  has unreadable tags the detail says the car may be among them;
- ``rail_car_unexpected`` (warning): a car read that is not on the manifest (every car
  when no manifest was open for that reader and direction);
- ``rail_order_differs`` (info): the cars both lists hold are not in the manifest's order;
- ``rail_car_unreadable`` (warning): a tag that failed its S-918 checks (subject
  ``<train>/seq<n>``), with its raw hex;
- ``rail_weight_differs`` (warning): a car's in-motion weight off the weight declared for
  it by more than the OIML R106 MPE of its class (``r106_class``, in service);
- ``rail_lot_weight_differs`` (warning): per lot on the train, the weighed cars' total off
  the total declared for them by more than the R106 MPE of train weighing, subject
  ``<train>/<lot>``;
- ``held_lot_departed`` (critical): a car of a lot on hold left on a train (direction
  ``out``), subject ``<train>/<lot>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding
from controller.weighing_tolerance import r106_train_mpe_kg, r106_wagon_mpe_kg

NAME = "rail_reconcile"
KINDS = ("passage",)
DEFAULTS: Mapping[str, Any] = {"r106_class": "0.5", "d_kg": 50}


def scope(fact: Fact) -> str:
    return fact.device_id


def _cid(initial: str, number: int) -> str:
    return f"{initial}{number}"


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    b = fact.body
    if b.get("duplicate_of_seq") is not None:  # the same train again: judged once
        return state, []
    dev = fact.device_id
    tid = b.get("train_id")
    name = tid or f"{dev}/{fact.seq}"
    cars = [c for c in b["cars"]]
    read = [c for c in cars if len(c) == 7]
    bad = [c for c in cars if len(c) == 8]
    out: list[Finding] = []

    def alert(code: str, subject: str, severity: str, **detail: Any) -> None:
        out.append(Alert(code, dev, True, severity, f"{name}/{subject}",
                         {"train_id": tid, "passage_seq": fact.seq, **detail}))

    for c in bad:
        alert("rail_car_unreadable", f"seq{c[0]}", "warning", car_seq=c[0], raw_hex=c[7],
              weight_kg=c[6])
    manifest = b.get("manifest")
    if manifest is None:
        for c in read:
            alert("rail_car_unexpected", _cid(c[1], c[2]), "warning", initial=c[1],
                  number=c[2], car_seq=c[0], manifest=None,
                  what_to_do="no open manifest for this reader and direction: declare the "
                             "train's manifest (portwatch train manifest)")
        return state, out
    planned = [_cid(m[0], m[1]) for m in manifest]
    by_id = {_cid(m[0], m[1]): m for m in manifest}
    seen = [_cid(c[1], c[2]) for c in read]
    seen_set, planned_set = set(seen), set(planned)
    for i, cid in enumerate(planned):
        if cid not in seen_set:
            m = by_id[cid]
            alert("rail_car_missing", cid, "warning", initial=m[0], number=m[1], lot=m[2],
                  position=i + 1, unreadable_in_train=len(bad))
    for c in read:
        cid = _cid(c[1], c[2])
        if cid not in planned_set:
            alert("rail_car_unexpected", cid, "warning", initial=c[1], number=c[2],
                  car_seq=c[0])
    common_seen = [x for x in seen if x in planned_set]
    common_planned = [x for x in planned if x in seen_set]
    if common_seen != common_planned:
        alert("rail_order_differs", "order", "info", manifest_order=common_planned,
              passage_order=common_seen)
    cls, d_kg = config["r106_class"], config.get("d_kg")
    for c in read:
        m = by_id.get(_cid(c[1], c[2]))
        if m is None or c[6] is None or m[3] is None:
            continue
        mpe = r106_wagon_mpe_kg(m[3], cls, d_kg=d_kg)
        if abs(c[6] - m[3]) > mpe:
            alert("rail_weight_differs", _cid(c[1], c[2]), "warning", lot=m[2],
                  weight_kg=c[6], declared_kg=m[3], mpe_kg=mpe, r106_class=str(cls))
    # per lot on the train: the weighed cars' total against what was declared for them,
    # with the R106 MPE of train weighing (tighter than the sum of the cars' MPEs)
    per_lot: dict[str, list[int]] = {}
    for c in read:
        m = by_id.get(_cid(c[1], c[2]))
        if m is None or c[6] is None or m[3] is None or m[2] is None:
            continue
        t = per_lot.setdefault(m[2], [0, 0, 0])
        t[0] += c[6]
        t[1] += m[3]
        t[2] += 1
    for lot, (weighed, declared, n) in sorted(per_lot.items()):
        mpe = r106_train_mpe_kg(declared, n, cls, d_kg=d_kg)
        if abs(weighed - declared) > mpe:
            alert("rail_lot_weight_differs", lot, "warning", lot=lot, weighed_kg=weighed,
                  declared_kg=declared, cars=n, mpe_kg=mpe, r106_class=str(cls))
    held = set(b.get("held_lots") or ())
    if held and b["direction"] == "out":
        for lot in sorted(held):
            on_train = [_cid(c[1], c[2]) for c in read
                        if by_id.get(_cid(c[1], c[2])) and by_id[_cid(c[1], c[2])][2] == lot]
            if on_train:
                alert("held_lot_departed", lot, "critical", lot=lot, cars=on_train,
                      what_to_do="a lot on hold left by rail: stop the train and call the "
                                 "customs officer")
    return state, out
