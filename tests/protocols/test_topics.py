"""Topic scheme tests; run under pytest and MicroPython."""

from protocols import topics


def test_topic_builds_and_parses_back():
    t = topics.topic("dalian-north", "wb-gate1", "evt")
    assert t == "pw/v1/dalian-north/wb-gate1/evt"
    assert topics.parse(t) == ("dalian-north", "wb-gate1", "evt")


def test_parse_rejects_foreign_or_malformed_topics():
    for bad in ("pw/v2/s/d/evt", "pw/v1/s/d", "pw/v1/s/d/evt/x", "pw/v1/s/d/nope", "pw/v1/s/+/evt",
                "pw/v1//d/evt", "other/v1/s/d/evt"):
        try:
            topics.parse(bad)
        except topics.TopicError:
            pass
        else:
            raise AssertionError("accepted " + bad)


def test_ids_refuse_wildcards_and_separators():
    for bad in ("a/b", "a+", "#", "", "x" * 65, "空"):
        try:
            topics.check_id(bad)
        except topics.TopicError:
            pass
        else:
            raise AssertionError("accepted id %r" % bad)


def test_uplink_filter_uses_single_level_wildcard():
    assert topics.uplink_filter("s1", "evt") == "pw/v1/s1/+/evt"
