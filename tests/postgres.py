"""PostgreSQL for tests: $BOTWIRE_TEST_POSTGRES_URL (.ci/run sets it), else a visible skip.

Each test gets a schema of its own (``bwt_<random>``), so tests never see each
other's rows; the schemas are dropped when the session ends.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

ENV = "BOTWIRE_TEST_POSTGRES_URL"
_made: list[str] = []


def base_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"set {ENV} to a PostgreSQL URL to run the PostgreSQL tests (.ci/run does)")
    return url


def fresh_schema_url() -> str:
    """A URL whose connections use a new, empty schema."""
    import psycopg

    url = base_url()
    schema = f"bwt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    _made.append(schema)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


def drop_schemas() -> None:
    if not _made or not os.environ.get(ENV):
        return
    import psycopg

    with psycopg.connect(os.environ[ENV], autocommit=True) as conn:
        for schema in _made:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    _made.clear()
