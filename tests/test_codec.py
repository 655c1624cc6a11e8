"""The codec round-trips every JSON value exactly and refuses everything else."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwire import ValueNotSerializable
from botwire._codec import decode, encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True would hide changes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(json_values)
def test_every_json_value_round_trips_exactly(value: Any) -> None:
    assert _same(decode(encode(value)), value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), -float("nan")])
@pytest.mark.parametrize("wrap", [lambda v: v, lambda v: {"x": [v]}, lambda v: [1, {"a": v}]])
def test_non_finite_floats_are_refused(value: float, wrap: Any) -> None:
    with pytest.raises(ValueNotSerializable, match="NaN and infinity"):
        encode(wrap(value))


def test_subclasses_that_compare_equal_are_stored_as_plain_json() -> None:
    from collections import OrderedDict

    assert decode(encode(OrderedDict(a=1))) == {"a": 1}


def test_no_module_of_botwire_imports_pickle() -> None:
    from pathlib import Path

    import botwire

    for path in Path(botwire.__file__).parent.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "pickle.load" not in text, path
