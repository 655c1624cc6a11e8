"""One error tree: stable codes, HTTP statuses, and a way back from a code."""

from __future__ import annotations

import pytest

import botwire
from botwire import _errors
from botwire._errors import ERRORS_BY_CODE, BotwireError, error_for_code


def _classes() -> list[type[BotwireError]]:
    return list(ERRORS_BY_CODE.values())


def test_codes_are_unique_and_every_class_is_public() -> None:
    classes = _classes()
    assert len({c.code for c in classes}) == len(classes)
    for cls in classes:
        assert getattr(botwire, cls.__name__) is cls
        assert 400 <= cls.status < 600


def test_the_tree_in_the_module_docstring_names_every_class() -> None:
    for cls in _classes():
        assert f"{cls.__name__} " in (_errors.__doc__ or "")
        assert f"{cls.status} {cls.code}" in (_errors.__doc__ or "")


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_code_maps_back_to_its_class(cls: type[BotwireError]) -> None:
    err = cls("boom")
    body = err.to_dict()
    again = error_for_code(body.pop("code"), body.pop("message"), **body)
    assert type(again) is cls and str(again) == "boom"


def test_details_survive_the_round_trip() -> None:
    err = error_for_code("write_limit_exceeded", "slow down", retry_after=12.5)
    assert isinstance(err, botwire.WriteLimitExceeded) and err.retry_after == 12.5
    err = error_for_code("conflict", "", keys=["a", "b"])
    assert isinstance(err, botwire.Conflict) and err.keys == ["a", "b"]
    assert type(error_for_code("no_such_code", "x")) is BotwireError


def test_errors_are_also_builtin_kinds() -> None:
    assert issubclass(botwire.InvalidName, ValueError)
    assert issubclass(botwire.ValueNotSerializable, TypeError)
    assert issubclass(botwire.NotFound, KeyError)
    assert str(botwire.NotFound("key 'x' does not exist")) == "key 'x' does not exist"
