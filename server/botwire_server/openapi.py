"""JSON Schemas of request bodies and of the error body, for ``/docs`` and client generators.

Bodies are parsed by ``botwire._wire`` (strictly, with the library's own checks),
so the schemas here document them instead of driving the parsing.
"""

from __future__ import annotations

from typing import Any

_TTL = {"type": ["number", "null"], "exclusiveMinimum": 0, "description": "seconds; null: never"}
_KEY = {"type": "string", "minLength": 1}

SCHEMAS: dict[str, dict[str, Any]] = {
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
            "value": {"description": "any JSON value"},
            "ttl": _TTL,
            "if_version": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "IncrBody": {
        "type": "object",
        "properties": {
            "by": {"type": "number", "default": 1},
            "ttl": {**_TTL, "description": "absent: keep the key's expiry"},
            "new_ttl": {**_TTL, "description": "for a key this creates, when ttl is absent"},
        },
    },
    "AppendBody": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "minItems": 1},
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
