"""Driving a running Dagster webserver the way a person in the UI does, and finding every
process a command started (for the `make ui` stop test and the bench's UI-path scenario).

The UI launches a run with the GraphQL `launchRun` mutation; the run is queued in the
instance, dequeued by the daemon and executed by the run launcher in a process of its own.
`DagsterUI.launch` does exactly that, so a run launched here takes the UI's (and the daily
schedule's) path, not the in-process path of `iru-pipeline run`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx

LOCATION = "iru_pipeline.definitions"
"""The code location name `workspace.yaml` gives the module."""
REPOSITORY = "__repository__"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""
_RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status creationTime startTime endTime }
  }
}"""
_LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports (the fake serves US, EU, AU on P..P+2)."""
    for _ in range(50):
        first = free_port()
        if all(_is_free(first + i) for i in range(1, count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DagsterUI:
    """A client of the webserver at `url`, speaking the GraphQL API its pages use."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=15)

    def close(self) -> None:
        self.http.close()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}})
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_loaded(self, timeout_s: float, alive: Any = None) -> None:
        """Until the webserver answers and the code location has loaded. `alive()` returning
        False (the process died) stops the wait early."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError(f"the UI process ended before it answered ({last})")
            try:
                data = self.graphql(_LOCATIONS)["workspaceOrError"]
                entries = data.get("locationEntries") or []
                loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
                errors = [e["locationOrLoadError"] for e in loaded
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors[0].get('message', '')[:500]}")
                if loaded:
                    return
                last = f"locations: {[e['loadStatus'] for e in entries]}"
            except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
                last = type(exc).__name__
            time.sleep(0.3)
        raise TimeoutError(f"the webserver at {self.url} did not load the code location in {timeout_s:.0f} s ({last})")

    def launch(self, job: str, *, partition: str | None = None, run_config: dict[str, Any] | None = None) -> str:
        """Launch `job` as the launchpad does; the run id."""
        tags = [{"key": "dagster/partition", "value": partition}] if partition else []
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job},
            "runConfigData": run_config or {},
            "executionMetadata": {"tags": tags},
        }
        result = self.graphql(_LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {json.dumps(result)[:800]}")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self.graphql(_RUN, {"runId": run_id})["runOrError"]

    def wait_for_run(self, run_id: str, timeout_s: float, poll_s: float = 0.1) -> dict[str, Any]:
        """Poll until the run has finished; its status and times."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run.get("status") in FINISHED:
                return run
            time.sleep(poll_s)
        raise TimeoutError(f"run {run_id} did not finish in {timeout_s:.0f} s")


# ------------------------------------------------------------------------------ processes


def processes_with_env(name: str, value: str) -> dict[int, str]:
    """Live processes whose environment holds `name=value`, with their command lines.

    Every process a command starts inherits its environment, even one that left its process
    group or was re-parented to init, so a marker variable finds orphans that a walk of the
    process tree would miss."""
    marker = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            if marker not in environ.split(b"\0"):
                continue
            if _state(int(entry)) == "Z":
                continue  # a zombie has exited; only its parent's wait is missing
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry)] = cmdline.strip()
    return found


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    return stat.rsplit(")", 1)[-1].split()[0]


def wait_until_gone(name: str, value: str, timeout_s: float) -> dict[int, str]:
    """Wait for every process marked `name=value` to end; those still alive at the bound."""
    deadline = time.monotonic() + timeout_s
    alive = processes_with_env(name, value)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = processes_with_env(name, value)
    return alive
