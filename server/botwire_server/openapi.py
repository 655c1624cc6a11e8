"""JSON Schemas of request bodies and of the error body, for ``/docs`` and client generators.

Bodies are parsed by ``botwire.wire`` (strictly, with the library's own checks),
so the schemas here document them instead of driving the parsing.
"""

from __future__ import annotations

from typing import Any

from starlette.convertors import Convertor, register_url_convertor

from botwire.wire import MAX_TTL

_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
# Keys are 1-512 bytes of UTF-8; a schema cannot count bytes, so it states 128
# characters, which always fit. Longer ASCII keys work all the same.
_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _NO_CONTROL}
_NAMESPACE = "^[A-Za-z0-9._:@-]{1,128}$"
_VERSION_TAG = '^(W/)?"[0-9]{1,19}"$'


def _param(where: str, name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    required = where == "path"
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": schema,
        "description": description,
    }


# Route handlers read their parameters themselves, with the library's own checks
# (FastAPI's parameter solving cost half of each request); these document them.
PARAMS: dict[str, dict[str, Any]] = {
    "namespace": _param(
        "path",
        "namespace",
        {"type": "string", "pattern": _NAMESPACE},
        "1-128 of A-Z a-z 0-9 . _ - : @",
    ),
    "key": _param(
        "path",
        "key",
        _KEY_SCHEMA,
        "1-512 bytes of UTF-8, no control characters; percent-encoded (dots too)",
    ),
    "if-match": _param(
        "header",
        "if-match",
        {"type": "string", "pattern": _VERSION_TAG},
        '"<version>": only over that version',
    ),
    "if-none-match": _param(
        "header", "if-none-match", {"type": "string"}, '"<version>": 304 if unchanged'
    ),
    "if-none-match-write": _param(
        "header", "if-none-match", {"type": "string", "enum": ["*"]}, "*: only if absent"
    ),
    "idempotency-key": _param(
        "header",
        "idempotency-key",
        {"type": "string", "minLength": 1, "maxLength": 255},
        "a repeat replays the first answer for 24 hours",
    ),
    "prefix": _param(
        "query", "prefix", {"type": "string", "maxLength": 128, "pattern": _NO_CONTROL[:-2] + "*$"}
    ),
    "after": _param("query", "after", _KEY_SCHEMA, "cursor: the last key seen"),
    "limit": _param(
        "query", "limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000}
    ),
    "compat-limit": _param(
        "query", "limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}
    ),
    "feed-limit": _param(
        "query",
        "limit",
        {"type": "integer", "minimum": 0, "maximum": 10_000, "default": 1000},
        "0: no changes, only the cursor of now",
    ),
    "values": _param(
        "query",
        "values",
        {"type": "string", "enum": ["true", "false"], "default": "false"},
        "true: each live change carries its value and expires_at",
    ),
    "wait": _param(
        "query",
        "wait",
        {"type": "integer", "minimum": 0, "maximum": 60, "default": 0},
        "seconds to hold the request while no change is after since (long polling)",
    ),
    "since": _param(
        "query",
        "since",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        "a version: the last one seen",
    ),
}


def spec(*params: str, body: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a route: its parameters and its JSON body."""
    extra: dict[str, Any] = {"parameters": [PARAMS[p] for p in params]}
    if body is not None:
        ref = {"$ref": f"#/components/schemas/{body}"}
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    return extra


_TTL = {
    "type": ["number", "null"],
    "exclusiveMinimum": 0,
    "maximum": MAX_TTL,
    "description": "seconds; null: never",
}
_KEY = {"type": "string", **_KEY_SCHEMA}
_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
_VALUE = {"$ref": "#/components/schemas/JsonValue"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "JsonValue": {
        "description": "any JSON value; integers within 64 bits, no NaN or infinity",
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            _INT64,
            {"type": "number", "not": {"type": "integer"}},
            {"type": "string"},
            {"type": "array", "items": _VALUE},
            {"type": "object", "additionalProperties": _VALUE},
        ],
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "PutBody": {
        "type": "object",
        "required": ["value"],
        "properties": {
            "value": _VALUE,
            "ttl": _TTL,
            "if_version": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "IncrBody": {
        "type": "object",
        "properties": {
            "by": {"anyOf": [_INT64, {"type": "number"}], "default": 1},
            "ttl": {**_TTL, "description": "absent: keep the key's expiry"},
            "new_ttl": {**_TTL, "description": "for a key this creates, when ttl is absent"},
        },
    },
    "AppendBody": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "minItems": 1, "items": _VALUE},
            "max_len": {"type": ["integer", "null"], "minimum": 1},
            "ttl": {**_TTL, "description": "absent: keep the key's expiry"},
            "new_ttl": _TTL,
        },
    },
    "TouchBody": {"type": "object", "required": ["ttl"], "properties": {"ttl": _TTL}},
    "BatchBody": {
        "type": "object",
        "required": ["ops"],
        "properties": {
            "ops": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {
                            "enum": [
                                "get",
                                "put",
                                "delete",
                                "incr",
                                "append",
                                "touch",
                                "list",
                                "scan",
                                "count",
                                "clear",
                                "stats",
                                "changes",
                            ]
                        },
                        "key": _KEY,
                    },
                },
            }
        },
    },
    "CompatPutBody": {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "string"}},
    },
}


def add_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    return spec


class _KeyConvertor(Convertor[str]):
    """Like Starlette's ``path``, but across newlines too: the key check then refuses them."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("key", _KeyConvertor())
