"""Intercom's OpenAPI 3.0 schemas as JSON Schema (draft 7), for the tests that validate the
fake's answers and the pipeline's request bodies against the spec."""

from __future__ import annotations

from typing import Any


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (draft 7)."""
    if isinstance(node, list):
        return [openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_json_schema(v) for k, v in node.items()
           if k not in ("nullable", "example", "examples", "discriminator", "xml", "externalDocs", "format")
           and not k.startswith("x-")}
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")  # draft 7 ignores siblings of $ref
        out = {"allOf": [{"$ref": ref}, out]} if out else {"$ref": ref}
    if node.get("nullable") is True:
        if "type" in out and "$ref" not in out and "allOf" not in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out
