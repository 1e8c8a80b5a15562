"""Every search body the client sends validates against Intercom 2.16's `search_request`.

The bodies are recorded on their way to the bundled fake (a transport that forwards to the
real loopback server), for every window shape: contacts (whole days) and conversations
(seconds), open-ended and bounded windows, the count probes and the paging bodies; plus the
probes of `check`. They are validated against the spec when it is present (skipped with the
reason otherwise, as test_fake_intercom_schema.py does) and always against a copy of the
schema's rule kept here, so a plain clone checks them too. The fake still answers exactly.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline.intercom_source.settings import RESOURCES
from iru_pipeline.intercom_source.windows import (
    CONTACTS_SEARCH,
    CONVERSATIONS_SEARCH,
    Window,
    window_query,
    windowed_search,
)
from iru_pipeline_tests.helpers import SPEC_PATH, openapi_to_json_schema

NOW = 1_760_000_000

# The rule of the spec's search_request, single_filter_search_request and
# multiple_filter_search_request: a `value` array holds filters, or groups, never both.
_SINGLE = {
    "type": "object",
    "properties": {
        "field": {"type": "string"},
        "operator": {"enum": ["=", "!=", "IN", "NIN", "<", "<=", ">", ">=", "~", "!~", "^", "$"]},
        "value": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                            {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}]},
    },
}
_LOCAL_RULE = {
    "definitions": {
        "single": _SINGLE,
        "multiple": {
            "type": "object",
            "properties": {
                "operator": {"enum": ["AND", "OR"]},
                "value": {"oneOf": [{"type": "array", "items": {"$ref": "#/definitions/multiple"}},
                                    {"type": "array", "items": {"$ref": "#/definitions/single"}}]},
            },
        },
    },
    "type": "object",
    "properties": {
        "query": {"oneOf": [{"$ref": "#/definitions/single"}, {"$ref": "#/definitions/multiple"}]},
        "pagination": {"type": ["object", "null"], "properties": {
            "per_page": {"type": "integer"}, "starting_after": {"type": ["string", "null"]}}},
    },
    "required": ["query"],
}


class Recording(httpx.HTTPTransport):
    """Forwards to the real server and keeps the JSON body of every search request."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, dict[str, Any]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.bodies.append((request.url.path, json.loads(request.read())))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def recorded() -> list[tuple[str, dict[str, Any]]]:
    """Bodies of full windowed syncs of contacts and conversations, split into windows."""
    with FakeIntercom(seed=5, contacts=900, conversations=700, regions=("us",), now=lambda: NOW) as fake:
        transport = Recording()
        ws = fake.workspace("us")
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), transport=transport,
                            retry=RetryPolicy(max_retries=1, backoff_base=0.01)) as client:
            for spec, want in ((CONTACTS_SEARCH, ws.contacts()), (CONVERSATIONS_SEARCH, ws.conversations())):
                start = NOW - 400 * 86400
                pages = windowed_search(client, spec, start, NOW, tz=ws.timezone, workers=4, split_above=120,
                                        per_page=50)
                got = sorted(str(i["id"]) for p in pages for i in p.items
                             if spec is CONVERSATIONS_SEARCH or i["updated_at"] >= start)
                expected = sorted(str(r["id"]) for r in want if r["updated_at"] >= start)
                assert got == expected, f"{spec.resource}: the fake no longer answers the windows exactly"
    assert {path for path, _ in transport.bodies} == {"/contacts/search", "/conversations/search"}
    return transport.bodies


def _every_shape() -> list[dict[str, Any]]:
    bodies = []
    for spec in (CONTACTS_SEARCH, CONVERSATIONS_SEARCH):
        for window in (Window(NOW - 86400 * 3, None), Window(NOW - 86400 * 3, NOW - 86400)):
            bodies.append({"query": window_query(spec, window), "pagination": {"per_page": 150}})
    bodies += [r.probe[2] for r in RESOURCES if r.probe[0] == "POST"]
    return bodies


def _groups_mixed_with_filters(query: Any) -> bool:
    value = query.get("value") if isinstance(query, dict) and query.get("operator") in ("AND", "OR") else None
    if not isinstance(value, list):
        return False
    kinds = {"group" if isinstance(v, dict) and v.get("operator") in ("AND", "OR") else "filter" for v in value}
    return len(kinds) > 1 or any(_groups_mixed_with_filters(v) for v in value)


def test_the_bodies_cover_every_window_shape(recorded: list[tuple[str, dict[str, Any]]]) -> None:
    contacts = [b for p, b in recorded if p == "/contacts/search"]
    conversations = [b for p, b in recorded if p == "/conversations/search"]
    # Bounded windows (split syncs), open-ended ones, count probes (per_page 1) and later pages.
    for bodies in (contacts, conversations):
        assert any(b["pagination"].get("per_page") == 1 for b in bodies)
        assert any(b["pagination"].get("starting_after") for b in bodies)
        assert any('"<"' in json.dumps(b["query"]) for b in bodies), "no bounded window"
        assert any('"<"' not in json.dumps(b["query"]) for b in bodies), "no open-ended window"


def test_search_bodies_follow_the_local_copy_of_the_spec_rule(recorded: list[tuple[str, dict[str, Any]]]) -> None:
    validator = jsonschema.Draft7Validator(_LOCAL_RULE)
    for body in [b for _, b in recorded] + _every_shape():
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors and not _groups_mixed_with_filters(body["query"]), (body, errors[:2])


def test_the_local_rule_refuses_a_group_mixed_with_a_filter() -> None:
    """The rule this file keeps is the spec's: the old contacts window body fails it."""
    group = {"operator": "OR", "value": [{"field": "updated_at", "operator": "=", "value": 1},
                                         {"field": "updated_at", "operator": ">", "value": 1}]}
    mixed = {"query": {"operator": "AND", "value": [group, {"field": "updated_at", "operator": "<", "value": 9}]}}
    assert list(jsonschema.Draft7Validator(_LOCAL_RULE).iter_errors(mixed))


def test_search_bodies_validate_against_the_spec(recorded: list[tuple[str, dict[str, Any]]]) -> None:
    yaml = pytest.importorskip("yaml")
    referencing = pytest.importorskip("referencing")
    path = SPEC_PATH
    if not path.is_file():
        pytest.skip(f"Intercom OpenAPI spec not found at {path} (set IRU_INTERCOM_SPEC to its path)")
    components = openapi_to_json_schema(yaml.safe_load(path.read_text(encoding="utf-8"))["components"])
    resource = referencing.Resource.from_contents({"components": components},
                                                  default_specification=referencing.jsonschema.DRAFT7)
    registry = referencing.Registry().with_resource("urn:intercom", resource)
    validator = jsonschema.Draft7Validator({"$ref": "urn:intercom#/components/schemas/search_request"},
                                           registry=registry)
    for body in [b for _, b in recorded] + _every_shape():
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (body, errors[:2])
