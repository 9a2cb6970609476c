"""The ``passage`` body (a rail reader's train); run under pytest and MicroPython."""

from protocols import bodies, passage


def _body(cars=None, **kw):
    b = {"direction": "out", "started_ts": 1000, "ended_ts": 61000, "speed_dkmh": 152,
         "axles": 168, "train": "T1",
         "cars": cars if cars is not None else [[1, "DLCX", 100001, 0, 150, 4, 81200],
                                               [2, None, None, None, None, None, None,
                                                "9EA488C030426A179000000000000330"],
                                               [3, "DLCX", 100003, 1, 150, 4, None]],
         "locos": [[1, "CR", 3001]]}
    b.update(kw)
    return b


def test_passage_valid_accepted():
    assert bodies.check("evt", "passage", _body()) is None
    assert bodies.check("evt", "passage", _body(cars=[])) is None


def test_passage_forty_cars_accepted():
    cars = [[i, "DLCX", 100000 + i, i % 2, 150, 4, 80000 + i] for i in range(1, 41)]
    assert bodies.check("evt", "passage", _body(cars=cars)) is None


def test_passage_bad_shapes_rejected():
    bad = (
        _body(direction="north"),
        _body(ended_ts=10),
        _body(speed_dkmh=-1),
        _body(cars=[[1, "DLCX", 1, 0, 150, 4]]),
        _body(cars=[[2, "DLCX", 1, 0, 150, 4, None], [2, "DLCX", 2, 0, 150, 4, None]]),
        _body(cars=[[1, "DLCX", 1, 2, 150, 4, None]]),
        _body(cars=[[1, "DLCX", 1, 0, 150, 0, None]]),
        _body(cars=[[1, "DLCX", 1, 0, 150, 4, -5]]),
        _body(cars=[[1, "DLCX", None, None, None, None, None, "AB"]]),
        _body(cars=[[1, None, None, None, None, None, None, ""]]),
        _body(cars=[[i, "A", i, 0, 1, 4, None] for i in range(1, passage.MAX_CARS + 2)]),
        _body(locos=[[1, "CR"]]),
        _body(train=""),
    )
    for b in bad:
        err = bodies.check("evt", "passage", b)
        assert isinstance(err, str) and err, b


def test_passage_car_dict_unreadable_keeps_raw():
    d = passage.car_dict([2, None, None, None, None, None, 70000, "ABCD"])
    assert d["readable"] is False and d["raw_hex"] == "ABCD" and d["weight_kg"] == 70000
    d = passage.car_dict([1, "DLCX", 7, 1, 150, 4, None])
    assert d["readable"] is True and d["initial"] == "DLCX" and d["number"] == 7
