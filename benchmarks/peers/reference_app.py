"""A replica of the reference BotWire memory endpoints, as the issue describes them.

Sync endpoints (run in FastAPI's thread pool), a pydantic string body, a new
sqlite3 connection per request in SQLite's default rollback-journal mode, one
commit per write.

    BENCH_DB=/tmp/ref.db uvicorn benchmarks.peers.reference_app:app --workers 2
"""

from __future__ import annotations

import os
import sqlite3
import time

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()
DB = os.environ.get("BENCH_DB", "reference.db")
with sqlite3.connect(DB, timeout=30) as setup:
    setup.execute(
        "CREATE TABLE IF NOT EXISTS memory (namespace TEXT, key TEXT, value TEXT, "
        "created_at REAL, updated_at REAL, PRIMARY KEY (namespace, key))"
    )


class Body(BaseModel):
    value: str


@app.put("/memory/{namespace}/{key}")
def put(namespace: str, key: str, body: Body) -> dict[str, object]:
    now = time.time()
    with sqlite3.connect(DB, timeout=30) as conn:
        conn.execute(
            "INSERT INTO memory VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE "
            "SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, key, body.value, now, now),
        )
    return {"namespace": namespace, "key": key, "stored": True, "bytes": len(body.value)}


@app.get("/memory/{namespace}/{key}")
def get(namespace: str, key: str) -> dict[str, object]:
    with sqlite3.connect(DB, timeout=30) as conn:
        row = conn.execute(
            "SELECT value, created_at, updated_at FROM memory WHERE namespace = ? AND key = ?",
            (namespace, key),
        ).fetchone()
    if row is None:
        raise HTTPException(404, "not found")
    return {
        "namespace": namespace,
        "key": key,
        "value": row[0],
        "created_at": row[1],
        "updated_at": row[2],
    }
