"""Name rules at their boundaries."""

from __future__ import annotations

import pytest

from botwire import InvalidName
from botwire._validate import check_key, check_namespace


@pytest.mark.parametrize(
    "name", ["a", "A-z_0.9:@", "x" * 128, "user-42", "team:agent@v2", "...", "a..b", ".a"]
)
def test_valid_namespaces(name: str) -> None:
    assert check_namespace(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 129, "a b", "a/b", "a\n", "é", "a%2Fb", "a\x00", ".", ".."]
)
def test_invalid_namespaces(name: str) -> None:
    with pytest.raises(InvalidName):
        check_namespace(name)


def test_key_limit_counts_utf8_bytes_not_characters() -> None:
    assert check_key("€" * 170)  # 510 bytes
    with pytest.raises(InvalidName, match="513 bytes"):
        check_key("€" * 171)


def test_error_messages_do_not_echo_huge_keys() -> None:
    with pytest.raises(InvalidName) as info:
        check_key("k" * 100_000)
    assert len(str(info.value)) < 200
