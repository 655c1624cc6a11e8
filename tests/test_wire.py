"""The JSON form of operations round-trips, and request parsing is strict."""

from __future__ import annotations

import pytest

from botwire import InvalidName, InvalidRequest, ValueNotSerializable
from botwire._codec import encode
from botwire.ops import (
    KEEP,
    Append,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Incr,
    ListKeys,
    Op,
    Put,
    Scan,
    Stats,
    Touch,
)
from botwire.wire import key_path, op_from_json, op_to_json, parse_json

OPS: list[Op] = [
    Get("k", True),
    Put("k", encode({"a": [1, 2.5, None]}), 30.0, 0),
    Put("k", encode("v"), None, None),
    Delete("k", 7),
    Incr("n", 2, KEEP, 60.0),
    Incr("n", 1.5, None, None),
    Append("l", encode([1, "x"]), 5, 10.0, None),
    Touch("k", None),
    ListKeys("user:", "user:3", 10),
    Scan("user:", "user:3", 10),
    Count("p"),
    Clear(""),
    Stats(),
    Changes(5, 100),
]


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_ops_round_trip_through_json(op: Op) -> None:
    assert op_from_json(parse_json(encode(op_to_json(op)))) == op


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"op": "put", "key": "k"}, InvalidRequest),
        ({"op": "put", "key": "", "value": 1}, InvalidName),
        ({"op": "append", "key": "k", "items": []}, InvalidRequest),
        ({"op": "touch", "key": "k"}, InvalidRequest),
        ({"op": "changes", "since": -1}, InvalidRequest),
        ({"op": "changes", "limit": False}, InvalidRequest),  # not the 0 of "the cursor of now"
        ({"op": "changes", "limit": 0.0}, InvalidRequest),
        ({"op": "changes", "values": "true"}, InvalidRequest),
        ({"op": "launch"}, InvalidRequest),
        (["not", "an", "object"], InvalidRequest),
    ],
)
def test_bad_ops_are_refused(data: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        op_from_json(data)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"v": 18446744073709551616}', ValueNotSerializable),  # orjson would round it
        (b'{"v": 1e400}', InvalidRequest),
        (b'{"v": NaN}', InvalidRequest),
        (b"[" * 5000 + b"]" * 5000, InvalidRequest),
        (b"\xff", InvalidRequest),
    ],
)
def test_parse_json_is_strict(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_json(body)


def test_long_digit_runs_inside_strings_are_fine() -> None:
    assert parse_json(b'{"phone": "123456789012345678901234", "n": 18446744073709551615}') == {
        "phone": "123456789012345678901234",
        "n": 18446744073709551615,
    }


def test_key_path_encodes_every_reserved_character_and_dots() -> None:
    assert key_path("a/b ../%?#é") == "a%2Fb%20%2E%2E%2F%25%3F%23%C3%A9"
