"""JSON Schemas of request bodies and of the error body, for ``/docs`` and client generators.

Bodies are parsed by ``botwire._wire`` (strictly, with the library's own checks),
so the schemas here document them instead of driving the parsing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path, Query
from pydantic import WithJsonSchema

from botwire._validate import MAX_TTL

_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
# Keys are 1-512 bytes of UTF-8; a schema cannot count bytes, so it states 128
# characters, which always fit. Longer ASCII keys work all the same.
_KEY_SCHEMA = {"minLength": 1, "maxLength": 128, "pattern": _NO_CONTROL}
_VERSION_TAG = '^(W/)?"[0-9]{1,19}"$'

Namespace = Annotated[
    str, Path(description="1-128 of A-Z a-z 0-9 . _ - : @", pattern="^[A-Za-z0-9._:@-]{1,128}$")
]
Key = Annotated[
    str,
    Path(description="1-512 bytes of UTF-8, no control characters", json_schema_extra=_KEY_SCHEMA),
]
Prefix = Annotated[
    str,
    Query(max_length=512, json_schema_extra={"maxLength": 128, "pattern": _NO_CONTROL[:-2] + "*$"}),
]
# Optional parameters are documented as plain strings: a nullable schema invites "null".
After = Annotated[
    str | None,
    WithJsonSchema({"type": "string", **_KEY_SCHEMA}),
    Query(max_length=512, description="cursor: the last key seen"),
]
IfMatch = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "pattern": _VERSION_TAG}),
    Header(description='"<version>": only over that version', pattern=_VERSION_TAG),
]
IfNoneMatchWrite = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "enum": ["*"]}),
    Header(description="*: only if absent", pattern="^[*]$"),
]
IfNoneMatchRead = Annotated[
    str | None,
    WithJsonSchema({"type": "string"}),
    Header(description='"<version>": 304 if unchanged'),
]
IdempotencyKey = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255}),
    Header(min_length=1, max_length=255, description="replays the first answer for 24 hours"),
]

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


def body(schema: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``schema``."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def add_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    return spec
