"""Every endpoint of the fake Intercom validates against Intercom's OpenAPI 2.16 schemas.

The spec is the shared reference `intercom-openapi.yaml` (next to the repo, or the path in
IRU_INTERCOM_SPEC). OpenAPI 3.0 `nullable` is turned into JSON-Schema type lists, `$ref`s are
resolved into `#/components/schemas/...`, formats are not asserted (real request ids are not
UUIDs, docs/intercom-api.md), and additional properties are allowed, as the spec allows them.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from iru_pipeline.fake_intercom import ExtraWorkspace, FakeIntercom, WorkspaceSizes
from iru_pipeline_tests.helpers import SPEC_PATH, openapi_to_json_schema

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

NOW = 1_760_000_000.0


@pytest.fixture(scope="module")
def validators() -> Any:
    path = SPEC_PATH
    if not path.is_file():
        pytest.skip(f"Intercom OpenAPI spec not found at {path} (set IRU_INTERCOM_SPEC to its path)")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    components = openapi_to_json_schema(spec["components"])
    # Activity-log metadata `before`/`after` are declared objects but arrive as strings (the
    # spec's own examples; docs/intercom-api.md#record-shapes-worth-knowing).
    meta = components["schemas"]["activity_log_metadata"]
    target = meta["anyOf"][0] if "anyOf" in meta else meta
    for key in ("before", "after"):
        target["properties"][key] = {"anyOf": [target["properties"][key], {"type": "string"}]}
    resource = referencing.Resource.from_contents({"components": components},
                                                  default_specification=referencing.jsonschema.DRAFT7)
    registry = referencing.Registry().with_resource("urn:intercom", resource)

    def make(schema_name: str) -> Any:
        schema = {"$ref": f"urn:intercom#/components/schemas/{schema_name}"}
        return jsonschema.Draft7Validator(schema, registry=registry)

    return make


@pytest.fixture(scope="module")
def fake() -> Any:
    # A further workspace on the US host (chosen by its token), with its own seed and sizes.
    brand = ExtraWorkspace("brand-b", seed=12, sizes=WorkspaceSizes(contacts=90, conversations=70, admins=5,
                                                                   teams=3, tags=8, activity_logs=60))
    fake = FakeIntercom(seed=11, contacts=400, conversations=300, activity_logs=200, now=lambda: NOW,
                        extra_workspaces={"us": [brand]})
    fake.start()
    for key in (None, "brand-b"):
        contacts = fake.workspace("us", key).contacts()
        fake.workspace("us", key).merge_contact(next(contacts)["id"], next(contacts)["id"])
    yield fake
    fake.stop()


def _get(fake: FakeIntercom, region: str, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {fake.token(region, key)}", "Intercom-Version": "2.16"}
    return httpx.request(method, fake.base_url(region) + path, headers=headers, timeout=30, **kw)


CASES = [
    ("GET", "/me", None, "admin_with_app"),
    ("GET", "/admins", None, "admin_list"),
    ("GET", "/admins?display_avatar=true", None, "admin_list"),
    ("GET", "/admins/7310001", None, "admin"),
    ("GET", "/admins/activity_logs?created_at_after=0&per_page=250", None, "activity_log_list"),
    ("GET", "/teams", None, "team_list"),
    ("GET", "/tags", None, "tag_list"),
    ("GET", "/data_attributes?model=contact&include_archived=true", None, "data_attribute_list"),
    ("GET", "/data_attributes?model=company", None, "data_attribute_list"),
    ("GET", "/conversations/attributes?include_archived=true", None, "conversation_attribute_list"),
    ("GET", "/contacts?per_page=150", None, "contact_list"),
    ("GET", "/contacts?per_page=150&include_merge_history=true", None, "contact_list"),
    ("POST", "/contacts/search", {"query": {"field": "updated_at", "operator": ">", "value": 0},
                                  "pagination": {"per_page": 150}}, "contact_list"),
    ("GET", "/conversations?per_page=150", None, "conversation_list"),
    ("POST", "/conversations/search", {"query": {"field": "updated_at", "operator": ">", "value": 0},
                                       "pagination": {"per_page": 150}}, "conversation_list"),
    ("GET", "/conversations/deleted?per_page=60", None, "deleted_conversation_list"),
    ("GET", "/ip_allowlist", None, "ip_allowlist"),
]


@pytest.mark.parametrize("region", ["us", "eu", "au"])
@pytest.mark.parametrize(("method", "path", "body", "schema"), CASES, ids=[c[1] for c in CASES])
def test_response_matches_openapi_schema(fake: FakeIntercom, validators: Any, region: str, method: str,
                                         path: str, body: Any, schema: str) -> None:
    response = _get(fake, region, method, path, json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    errors = sorted(validators(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


@pytest.mark.parametrize(("method", "path", "body", "schema"), CASES, ids=[c[1] for c in CASES])
def test_another_workspace_on_the_host_matches_openapi_schema(fake: FakeIntercom, validators: Any, method: str,
                                                              path: str, body: Any, schema: str) -> None:
    response = _get(fake, "us", method, path, "brand-b", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    if path == "/me":
        assert data["app"]["id_code"] == fake.workspace("us", "brand-b").workspace_id
    errors = sorted(validators(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def test_single_conversation_matches_schema(fake: FakeIntercom, validators: Any) -> None:
    conversation_id = next(iter(fake.workspace("us").conversations()))["id"]
    data = _get(fake, "us", "GET", f"/conversations/{conversation_id}").json()
    assert data["conversation_parts"]["conversation_parts"], "a single conversation carries its parts"
    errors = list(validators("conversation").iter_errors(data))
    assert not errors, [e.message[:300] for e in errors[:10]]


def test_single_contact_matches_schema(fake: FakeIntercom, validators: Any) -> None:
    contact_id = next(iter(fake.workspace("eu").contacts()))["id"]
    data = _get(fake, "eu", "GET", f"/contacts/{contact_id}").json()
    errors = list(validators("contact").iter_errors(data))
    assert not errors, [e.message[:300] for e in errors[:10]]


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/contacts?starting_after=bm90LWEtY3Vyc29y", None, 400),
    ("GET", "/data_attributes?model=conversation", None, 422),
    ("GET", "/admins/activity_logs", None, 400),
    ("POST", "/contacts/search", {"query": {"field": "id", "operator": "=", "value": "x"},
                                  "sort": {"field": "updated_at", "order": "desc"}}, 400),
    ("GET", "/conversations/1", None, 404),
])
def test_error_bodies_match_error_schema(fake: FakeIntercom, validators: Any, method: str, path: str,
                                         body: Any, status: int) -> None:
    response = _get(fake, "us", method, path, json=body)
    assert response.status_code == status
    errors = list(validators("error").iter_errors(response.json()))
    assert not errors, [e.message for e in errors]


def test_unauthorized_matches_error_schema(fake: FakeIntercom, validators: Any) -> None:
    response = httpx.get(fake.base_url("au") + "/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert not list(validators("error").iter_errors(response.json()))


def test_converter_keeps_nullability_strict() -> None:
    """The nullable conversion must not make every field accept null (else the test is void)."""
    schema = openapi_to_json_schema({"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string", "nullable": True},
        "c": {"$ref": "#/definitions/x", "nullable": True}}})
    props = schema["properties"]
    assert props["a"] == {"type": "string"}
    assert props["b"]["type"] == ["string", "null"]
    assert {"type": "null"} in props["c"]["anyOf"]
    validator = jsonschema.Draft7Validator(copy.deepcopy(schema))
    assert list(validator.iter_errors({"a": None}))


def test_pre_216_shapes_fail_the_216_schema(fake: FakeIntercom, validators: Any) -> None:
    """The validator has teeth: the 2.15 echo (priority flag, null assignees) is not 2.16."""
    headers = {"Authorization": f"Bearer {fake.token('us')}", "Intercom-Version": "2.15"}
    data = httpx.get(fake.base_url("us") + "/conversations?per_page=50", headers=headers).json()
    messages = {e.message for e in validators("conversation_list").iter_errors(data)}
    assert any("not one of ['none', 'low', 'medium', 'high', 'urgent']" in m for m in messages)
    assert any("None is not of type 'integer'" in m for m in messages)
