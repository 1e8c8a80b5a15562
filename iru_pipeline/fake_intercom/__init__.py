"""A faithful fake of Intercom's REST API (version 2.16), for tests, demos and benchmarks.

Self-contained: it imports nothing from the rest of `iru_pipeline` and needs only the
standard library. Data is generated from a seed, lazily, so a workspace of a million contacts
costs almost nothing to build; mutations live in small overlays.

    from iru_pipeline.fake_intercom import FakeIntercom, FaultConfig, MESSAGE_BODY_MARKER

    with FakeIntercom(seed=7, contacts=2000) as fake:
        fake.base_url("us"), fake.token("us")
        fake.workspace("us").update_contacts(count=300, same_second=True)
        fake.faults("us").update(rate_429_every=5)

    # two workspaces on the US host, chosen by token; same seed and sizes, so the same ids
    with FakeIntercom(regions=("us",), extra_workspaces={"us": ["brand-b"]}) as fake:
        fake.token("us"), fake.token("us", "brand-b"), fake.workspace("us", "brand-b").workspace_id

Modules: `fake` (the controller), `server` (HTTP, the workspace chosen by token, control API
under /_fake/), `hosted` (one served workspace: its token, faults, rate limit, statistics),
`api` (endpoints and envelopes), `search` (query language), `store` (lazy collections),
`workspace` (data and mutations), `gen_*` (record generators), `scenario` (the planted
compliance findings), `cli` (the command line), `workspaces_file` (a workspaces file, in the
product's TOML format, for the served workspaces).
"""

from .cli import build_arg_parser, main, run_from_args
from .constants import DEFAULT_INTERNAL_DOMAIN, MESSAGE_BODY_MARKER
from .fake import ExtraWorkspace, FakeIntercom
from .faults import FaultConfig
from .workspace import Workspace, WorkspaceSizes
from .workspaces_file import served_workspaces, write_workspaces_file

__all__ = [
    "DEFAULT_INTERNAL_DOMAIN",
    "ExtraWorkspace",
    "FakeIntercom",
    "FaultConfig",
    "MESSAGE_BODY_MARKER",
    "Workspace",
    "WorkspaceSizes",
    "build_arg_parser",
    "main",
    "run_from_args",
    "served_workspaces",
    "write_workspaces_file",
]
