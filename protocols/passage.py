"""Shape of a ``passage`` body: one train seen by a rail reader (edge/drivers/rail.py).

Pure and MicroPython-compatible (protocols/bodies.py registers ``check``). Cars are compact
arrays, in the order the train passed, to keep a 40-car train well inside one packet and
the agent's heap:

  readable:   [seq, initial, number, side, length_dm, axles, weight_kg|null]
  unreadable: [seq, null, null, null, null, null, weight_kg|null, raw_hex]

``seq`` counts tag reads from 1 along the train; an unreadable car (its tag failed the
S-918 checks, protocols/s918.py) keeps its raw hex so that nothing seen is dropped.
Locomotives go to ``locos`` as [seq, initial, number].
"""

DIRECTIONS = ("in", "out")
CAR_FIELDS = ("seq", "initial", "number", "side", "length_dm", "axles", "weight_kg")
MAX_CARS = 120
MAX_LOCOS = 8
MAX_TRAIN_ID = 40


def _int(v: object, low: int, high: int) -> bool:
    return type(v) is int and low <= v <= high


def _car(car: object, prev: int) -> "str | None":
    if not isinstance(car, list) or len(car) not in (7, 8):
        return "a car is [seq, initial, number, side, length_dm, axles, weight_kg|null]" \
            " or, unreadable, [seq, null, null, null, null, null, weight_kg|null, raw_hex]"
    if not _int(car[0], prev + 1, 100000):
        return "cars' seq must be integers increasing along the train"
    w = car[6]
    if w is not None and not _int(w, 0, 500000):
        return "weight_kg must be null or an integer 0-500000"
    if len(car) == 8:
        raw = car[7]
        if not isinstance(raw, str) or not 0 < len(raw) <= 64:
            return "an unreadable car's raw_hex must be a string of 1-64 characters"
        for v in car[1:6]:
            if v is not None:
                return "an unreadable car has null initial, number, side, length and axles"
        return None
    initial = car[1]
    if not isinstance(initial, str) or not 0 < len(initial) <= 4:
        return "initial must be a string of 1-4 letters"
    if not _int(car[2], 0, 1048575) or not _int(car[3], 0, 1) or not _int(car[4], 0, 4095) \
            or not _int(car[5], 1, 32):
        return "number 0-1048575, side 0-1, length_dm 0-4095 and axles 1-32 are integers"
    return None


def check(body: dict) -> "str | None":  # type: ignore[type-arg]
    """None when ``body`` is a valid passage, else what is wrong."""
    if body.get("direction") not in DIRECTIONS:
        return "direction must be 'in' or 'out'"
    for name, high in (("started_ts", 1 << 62), ("ended_ts", 1 << 62), ("speed_dkmh", 5000),
                       ("axles", 4000)):
        if not _int(body.get(name), 0, high):
            return "%s must be an integer 0-%d" % (name, high)
    if body["ended_ts"] < body["started_ts"]:
        return "ended_ts must not be before started_ts"
    train = body.get("train")
    if train is not None and (not isinstance(train, str) or not 0 < len(train) <= MAX_TRAIN_ID):
        return "train must be a string of 1-%d characters" % MAX_TRAIN_ID
    cars = body.get("cars")
    if not isinstance(cars, list) or len(cars) > MAX_CARS:
        return "cars must be a list of at most %d cars" % MAX_CARS
    prev = 0
    for car in cars:
        err = _car(car, prev)
        if err:
            return err
        prev = car[0]
    locos = body.get("locos", [])
    if not isinstance(locos, list) or len(locos) > MAX_LOCOS:
        return "locos must be a list of at most %d locomotives" % MAX_LOCOS
    for loco in locos:
        if not isinstance(loco, list) or len(loco) != 3 or not _int(loco[0], 1, 100000) \
                or not isinstance(loco[1], str) or not _int(loco[2], 0, 1048575):
            return "a locomotive is [seq, initial, number]"
    return None


def car_dict(car: list) -> dict:  # type: ignore[type-arg]
    """A car array as a dict (controller side); ``readable`` False for an unreadable tag."""
    if len(car) == 8:
        return {"seq": car[0], "readable": False, "initial": None, "number": None,
                "side": None, "length_dm": None, "axles": None, "weight_kg": car[6],
                "raw_hex": car[7]}
    d = {"readable": True, "raw_hex": None}
    for i, name in enumerate(CAR_FIELDS):
        d[name] = car[i]
    return d
