"""One regional host of the fake Intercom serves several workspaces, chosen by Bearer token.

As on Intercom, a token belongs to one workspace and sees only its data; limits, faults and
statistics are the workspace's own. Everything goes over loopback HTTP with httpx.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from iru_pipeline.fake_intercom import (
    ExtraWorkspace,
    FakeIntercom,
    FaultConfig,
    WorkspaceSizes,
    build_arg_parser,
    main,
)

NOW = 1_760_000_000.0
US_SIZES = dict(contacts=60, conversations=24, activity_logs=30, admins=6)
"""The US host's first workspace; `brand-b` takes the same seed and sizes."""
BRAND_C = WorkspaceSizes(contacts=25, conversations=12, admins=5, teams=3, tags=8, activity_logs=15)


def client(fake: FakeIntercom, key: str | None = None, *, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or fake.token('us', key)}", "Intercom-Version": "2.16"}
    return httpx.Client(base_url=fake.base_url("us"), headers=headers, timeout=30)


def all_pages(c: httpx.Client, path: str, key: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list (`pages.next.starting_after`)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"per_page": 7}
    for _ in range(1000):
        body = c.get(path, params=params).raise_for_status().json()
        items += body[key]
        nxt = body["pages"].get("next")
        if not nxt:
            return items
        params["starting_after"] = nxt["starting_after"]
    raise AssertionError("pagination did not end")


@pytest.fixture()
def fake() -> Iterator[FakeIntercom]:
    extras = {"us": [ExtraWorkspace("brand-b"),
                     ExtraWorkspace("brand-c", workspace_id="brandc01", name="Brand C Ltd", seed=99, sizes=BRAND_C)]}
    with FakeIntercom(seed=7, regions=("us", "eu"), now=lambda: NOW, extra_workspaces=extras, **US_SIZES) as f:
        yield f


def test_each_token_sees_its_own_workspace_on_one_host(fake: FakeIntercom) -> None:
    assert fake.workspace_keys("us") == ("us", "brand-b", "brand-c")
    assert fake.workspace_keys("eu") == ("eu",)
    seen = {}
    for key in fake.workspace_keys("us"):
        with client(fake, key) as c:
            app = c.get("/me").raise_for_status().json()["app"]
            contacts = all_pages(c, "/contacts", "data")
            conversations = all_pages(c, "/conversations", "conversations")
        assert app["region"] == "US"
        assert {contact["workspace_id"] for contact in contacts} == {app["id_code"]}
        seen[key] = (app, contacts, conversations)
    ids = [seen[k][0]["id_code"] for k in ("us", "brand-b", "brand-c")]
    assert ids[2] == "brandc01" and len(set(ids)) == 3
    assert seen["brand-c"][0]["name"] == "Brand C Ltd" and seen["brand-b"][0]["name"] != seen["us"][0]["name"]
    # Sizes as configured: the first two 60 contacts and 24 conversations, brand-c 25 and 12.
    assert [(len(seen[k][1]), len(seen[k][2])) for k in ("us", "brand-b", "brand-c")] == [(60, 24), (60, 24), (25, 12)]
    # Same seed and sizes: the same record ids (what a pipeline loading both must keep apart).
    assert [c["id"] for c in seen["brand-b"][1]] == [c["id"] for c in seen["us"][1]]
    assert [c["id"] for c in seen["brand-b"][2]] == [c["id"] for c in seen["us"][2]]
    # Another seed: other data (ids may still overlap, they come from the region's id scheme).
    assert {c["email"] for c in seen["brand-c"][1]}.isdisjoint({c["email"] for c in seen["us"][1]})


def test_a_workspaces_changes_are_seen_only_with_its_token(fake: FakeIntercom) -> None:
    (created,) = fake.workspace("us", "brand-b").create_contacts(1)
    removed = next(iter(fake.workspace("us").contacts()))["id"]
    fake.workspace("us").delete_contacts([removed])
    with client(fake, "brand-b") as b, client(fake) as first:
        assert b.get(f"/contacts/{created}").status_code == 200
        assert first.get(f"/contacts/{created}").status_code == 404
        assert b.get(f"/contacts/{removed}").status_code == 200
        assert first.get(f"/contacts/{removed}").status_code == 404
        # A listing cursor is the workspace's own: another workspace's token cannot use it.
        cursor = first.get("/contacts", params={"per_page": 5}).json()["pages"]["next"]["starting_after"]
        assert b.get("/contacts", params={"per_page": 5, "starting_after": cursor}).status_code == 400


def test_a_token_of_none_of_the_hosts_workspaces_gets_401_as_before(fake: FakeIntercom) -> None:
    for token in ("wrong", fake.token("eu")):
        with client(fake, token=token) as c:
            r = c.get("/me")
        assert r.status_code == 401
        assert r.json()["errors"] == [{"code": "unauthorized", "message": "Access Token Invalid"}]
        assert not any(k.lower().startswith("x-ratelimit") for k in r.headers)
    assert httpx.get(fake.base_url("us") + "/me").status_code == 401
    # Refused requests count on the host's first workspace, as on a single-workspace host.
    assert fake.stats("us")["by_status"] == {"401": 3}
    assert fake.stats("us", "brand-b")["total_requests"] == 0 and fake.stats("us", "brand-c")["total_requests"] == 0
    with pytest.raises(KeyError, match="hosts no workspace 'nope'"):
        fake.token("us", "nope")


def test_rate_limits_are_per_workspace() -> None:
    extras = {"us": [ExtraWorkspace("brand-b", rate_limit_per_window=2), ExtraWorkspace("brand-c")]}
    with FakeIntercom(seed=3, contacts=10, conversations=5, regions=("us",), now=lambda: NOW,
                      rate_limit_per_window=4, extra_workspaces=extras) as fake:
        fake.set_rate_limit("us", 3, key="brand-c")
        with client(fake) as first, client(fake, "brand-b") as b, client(fake, "brand-c") as c:
            b_codes = [b.get("/tags").status_code for _ in range(3)]
            c_codes = [c.get("/tags").status_code for _ in range(4)]
            first_answers = [first.get("/tags") for _ in range(4)]
        assert b_codes == [200, 200, 429] and c_codes == [200, 200, 200, 429]
        # The first workspace's window is untouched by the seven requests of the others.
        assert [r.status_code for r in first_answers] == [200] * 4
        assert [r.headers["X-RateLimit-Remaining"] for r in first_answers] == ["3", "2", "1", "0"]
        assert first_answers[0].headers["X-RateLimit-Limit"] == "4"
        assert [fake.stats("us", k)["rate_limited"] for k in ("us", "brand-b", "brand-c")] == [0, 1, 1]


def test_faults_and_statistics_are_per_workspace() -> None:
    extras = {"us": [ExtraWorkspace("brand-b", faults=FaultConfig(forbidden_paths=("/conversations",))),
                     ExtraWorkspace("brand-c")]}
    with FakeIntercom(seed=3, contacts=10, conversations=5, regions=("us",), now=lambda: NOW,
                      extra_workspaces=extras) as fake:
        fake.faults("us", "brand-c").update(error_every=1, error_statuses=(503,))
        with client(fake) as first, client(fake, "brand-b") as b, client(fake, "brand-c") as c:
            assert [first.get("/conversations").status_code, first.get("/tags").status_code] == [200, 200]
            assert [b.get("/conversations").status_code, b.get("/tags").status_code] == [403, 200]
            assert [c.get("/conversations").status_code, c.get("/tags").status_code] == [503, 503]
            stats = {k: fake.stats("us", k) for k in fake.workspace_keys("us")}
            assert {k: s["by_status"] for k, s in stats.items()} == {
                "us": {"200": 2}, "brand-b": {"403": 1, "200": 1}, "brand-c": {"503": 2}}
            assert stats["brand-c"]["server_errors"] == 2 and stats["brand-b"]["faults"] == {"forbidden_scope": 1}
            assert stats["brand-b"]["workspace"] == "brand-b"
            assert stats["brand-b"]["workspace_id"] == fake.workspace("us", "brand-b").workspace_id
            fake.reset_stats("us", "brand-c")
            assert fake.stats("us", "brand-c")["total_requests"] == 0 and fake.stats("us")["total_requests"] == 2
            fake.clear_faults()
            assert b.get("/conversations").status_code == 200 and c.get("/tags").status_code == 200
            fake.reset_stats("us")
            assert all(fake.stats("us", k)["total_requests"] == 0 for k in fake.workspace_keys("us"))


def test_the_control_api_picks_a_workspace_by_key(fake: FakeIntercom) -> None:
    base = fake.base_url("us") + "/_fake/"
    info = httpx.get(base + "info", params={"workspace": "brand-c"}).json()
    assert (info["workspace"], info["workspace_id"]) == ("brand-c", "brandc01")
    assert info["token"] == fake.token("us", "brand-c")
    assert info["sizes"]["contacts"] == 25
    assert httpx.get(base + "info").json()["workspace_id"] == fake.workspace("us").workspace_id
    listed = httpx.get(base + "workspaces").json()
    assert [w["workspace"] for w in listed] == ["us", "brand-b", "brand-c"]
    created = httpx.post(base + "mutate", params={"workspace": "brand-b"},
                         json={"action": "create_contacts", "n": 1}).json()["result"]
    assert fake.workspace("us", "brand-b").contact(created[0]) is not None
    assert fake.workspace("us").contact(created[0]) is None
    httpx.post(base + "faults", params={"workspace": "brand-b"}, json={"error_every": 1}).raise_for_status()
    assert fake.faults("us", "brand-b").error_every == 1 and fake.faults("us").error_every == 0
    unknown = httpx.get(base + "stats", params={"workspace": "nope"})
    assert unknown.status_code == 400 and "hosts no workspace 'nope'" in unknown.json()["error"]


@pytest.mark.parametrize(("extras", "message"), [
    ({"us": ["us"]}, "key 'us' is taken"),
    ({"us": ["b", "b"]}, "key 'b' is taken"),
    ({"us": ["Brand B"]}, "lower-case letters"),
    ({"us": [ExtraWorkspace("b", token="dG9rOnQ2a3g5dzJxOmZha2UtdXMtYWNjZXNzLXRva2Vu")]}, "share one token"),
    ({"us": [ExtraWorkspace("b", workspace_id="t6kx9w2q")]}, "share one workspace_id"),
    ({"au": ["b"]}, "does not serve"),
])
def test_inconsistent_extra_workspaces_are_refused(extras: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeIntercom(contacts=5, conversations=5, regions=("us", "eu"), extra_workspaces=extras)


# --- command line ---------------------------------------------------------------------------------
NAME = re.compile(r"[a-z0-9-]{1,40}")


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "iru_pipeline.fake_intercom", "--port", "0", "--contacts", "20",
                             "--conversations", "8", "--activity-logs", "10", "--admins", "5", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_arg_parser_serves_one_workspace_per_region_by_default() -> None:
    args = build_arg_parser().parse_args([])
    assert (args.workspaces_per_region, args.workspaces_file) == (1, None)


def test_cli_serves_n_workspaces_per_region_and_writes_a_workspaces_file(tmp_path: Path) -> None:
    path = tmp_path / "workspaces.toml"
    proc = _serve("--regions", "us,eu", "--workspaces-per-region", "3", "--workspaces-file", str(path))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in range(7)]
        served, last = lines[:6], lines[6]
        assert [(line[0], line[3]) for line in served] == [
            ("us", "us-001"), ("us", "us-002"), ("us", "us-003"), ("eu", "eu-001"), ("eu", "eu-002"), ("eu", "eu-003")]
        assert last[:3] == ["workspaces", "file", str(path)] and last[-1] == f"{path}.env"

        workspaces = tomllib.loads(path.read_text(encoding="utf-8"))["workspaces"]
        assert list(workspaces) == [line[3] for line in served] and all(NAME.fullmatch(n) for n in workspaces)
        env_path = Path(f"{path}.env")
        assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in env_path.read_text(encoding="utf-8").splitlines())
        ids = set()
        for (region, url, token, name) in served:
            entry = workspaces[name]
            assert entry == {"region": region, "token_env": f"IRU_FAKE_TOKEN_{name.upper().replace('-', '_')}",
                             "base_url": url}
            assert exports[entry["token_env"]] == token and token not in path.read_text(encoding="utf-8")
            me = httpx.get(url + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
            assert me["app"]["region"] == region.upper()
            ids.add(me["app"]["id_code"])
        assert len(ids) == 6, "every workspace has its own id"
    finally:
        _stop(proc)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the fake's RSS from /proc")
def test_two_hundred_small_workspaces_in_one_process_stay_small(tmp_path: Path) -> None:
    path = tmp_path / "workspaces.toml"
    proc = subprocess.Popen([sys.executable, "-m", "iru_pipeline.fake_intercom", "--port", "0", "--regions", "us",
                             "--workspaces-per-region", "200", "--contacts", "50", "--conversations", "20",
                             "--activity-logs", "20", "--admins", "5", "--rate-limit", "0",
                             "--workspaces-file", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(201):
            proc.stdout.readline()
        workspaces = tomllib.loads(path.read_text(encoding="utf-8"))["workspaces"]
        tokens = dict(line.removeprefix("export ").split("=", 1)
                      for line in Path(f"{path}.env").read_text(encoding="utf-8").splitlines())
        assert len(workspaces) == 200
        search = {"query": {"field": "updated_at", "operator": ">", "value": 0}, "pagination": {"per_page": 150}}
        with httpx.Client(timeout=30) as c:
            for entry in workspaces.values():
                headers = {"Authorization": f"Bearer {tokens[entry['token_env']]}"}
                contacts = c.post(entry["base_url"] + "/contacts/search", headers=headers, json=search).json()
                conversations = c.post(entry["base_url"] + "/conversations/search", headers=headers, json=search)
                logs = c.get(entry["base_url"] + "/admins/activity_logs", headers=headers,
                             params={"created_at_after": 0, "per_page": 250})
                assert len(contacts["data"]) == 50
                assert conversations.status_code == 200 and logs.status_code == 200
        assert _rss_mb(proc.pid) < 160, "200 small workspaces, every record served once"
    finally:
        _stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--workspaces-per-region", "0"], "--workspaces-per-region must be 1 or more"),
    (["--workspaces-file", "/nonexistent-folder/workspaces.toml"],
     "cannot write the workspaces file /nonexistent-folder/workspaces.toml"),
])
def test_cli_bad_workspace_arguments_are_one_line_errors(args: list[str], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--regions", "au", "--contacts", "5", "--conversations", "5", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fake-intercom: {message}") and err.count("\n") == 1
