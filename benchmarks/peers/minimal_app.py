"""The practical limit: a minimal FastAPI + uvicorn key-value app over sqlite3.

Same pragmas as botwire's store (WAL, synchronous from $BENCH_SYNCHRONOUS, busy
timeout), one connection per worker, the raw body stored as is: no names, no
versions, no limits, no auth.

    BENCH_DB=/tmp/min.db uvicorn benchmarks.peers.minimal_app:app --workers 2
"""

from __future__ import annotations

import os
import sqlite3
import time

from fastapi import FastAPI, Request, Response

app = FastAPI()
conn = sqlite3.connect(
    os.environ.get("BENCH_DB", "minimal.db"),
    timeout=10,
    isolation_level=None,
    check_same_thread=False,
)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute(f"PRAGMA synchronous={os.environ.get('BENCH_SYNCHRONOUS', 'full')}")
conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, updated REAL)")


@app.get("/kv/{key}")
async def get(key: str) -> Response:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    if row is None:
        return Response(status_code=404)
    return Response(row[0], media_type="application/json")


@app.put("/kv/{key}")
async def put(key: str, request: Request) -> Response:
    body = await request.body()
    conn.execute(
        "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
        "updated = excluded.updated",
        (key, body, time.time()),
    )
    return Response(b'{"ok":true}', media_type="application/json")
