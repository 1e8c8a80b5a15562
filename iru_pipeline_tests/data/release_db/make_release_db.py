"""Write `release.duckdb.gz`: a small DuckDB file as a user of a given release leaves it.

Run it with the RELEASE's package first on the path (a git worktree of that commit), from
the repository root:

    git worktree add /tmp/rel 1d9c912
    PYTHONPATH=/tmp/rel .venv/bin/python iru_pipeline_tests/data/release_db/make_release_db.py \
        iru_pipeline_tests/data/release_db/release.duckdb.gz

It starts the bundled fake Intercom (regions us and eu, a few dozen records, a fixed clock),
runs `iru-pipeline run` (the release's `cli.main`) twice with a mutation between the runs (an
admin removed, contacts and conversations updated, a conversation deleted), so the file holds
retired scd2 rows, two runs' sync results and two chained evidence runs; checkpoints the file,
stores it gzipped (OUT) and writes `release_db.json` beside it: what rebuilds the same fake
(seed, sizes, clock, mutations), the PII key of this fixture and the release commit.

`test_upgrade_from_release.py` imports `build_fake` and `apply_mutations` from this file to
rebuild the fake in the state the release's second run saw. Only the fake (which imports
nothing from the rest of the package) is imported at module level.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from iru_pipeline.fake_intercom import FakeIntercom

SEED = 13
REGIONS = ("us", "eu")
SIZES: dict[str, int] = dict(contacts=60, conversations=40, activity_logs=30, admins=6, teams=3, tags=5)
EPOCH = 1_790_000_000.0
"""The fake's clock at start (2026-09-21 14:13:20 UTC): its data is generated relative to it."""
MUTATION_AT = EPOCH + 3600.0
"""The fake's clock while the mutations between the two runs are applied."""
PII_KEY = "e95f09e8a0bcd894259eb923605ba55128f5557365ed4ef877e1a37074e8aca5"
"""A fixed test key (the test suite's own), for the fake's data only."""
MUTATIONS: list[dict[str, Any]] = [
    {"region": "us", "op": "remove_admin", "admin": "last non-owner admin"},
    {"region": "us", "op": "update_contacts", "count": 4},
    {"region": "us", "op": "update_conversations", "count": 3},
    {"region": "us", "op": "delete_conversations", "conversation": "first live conversation"},
    {"region": "eu", "op": "update_contacts", "count": 2},
    {"region": "eu", "op": "update_conversations", "count": 2},
]
"""Applied in this order at MUTATION_AT; the fake's mutations draw from a seeded stream, so the
same order on the same fake touches the same records."""


class Clock:
    """The fake's clock: a constant that only the caller moves."""

    def __init__(self, t: float = EPOCH) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def build_fake(clock: Clock) -> FakeIntercom:
    """The fake both the release's runs and the test use (not started)."""
    return FakeIntercom(seed=SEED, regions=REGIONS, now=clock, **SIZES)  # type: ignore[arg-type]


def apply_mutations(fake: FakeIntercom, clock: Clock) -> dict[str, Any]:
    """Apply MUTATIONS at MUTATION_AT; returns what they touched (ids), for the record."""
    clock.t = MUTATION_AT
    touched: dict[str, Any] = {}
    for m in MUTATIONS:
        ws = fake.workspace(m["region"])
        key = f"{m['region']}.{m['op']}"
        if m["op"] == "remove_admin":
            owner = ws.owner.id
            admin_id = [a["id"] for a in ws.admins() if a["id"] != owner][-1]
            ws.remove_admin(admin_id)
            touched[key] = [admin_id]
        elif m["op"] == "update_contacts":
            touched[key] = ws.update_contacts(count=m["count"])
        elif m["op"] == "update_conversations":
            touched[key] = ws.update_conversations(count=m["count"])
        elif m["op"] == "delete_conversations":
            gone = [next(iter(ws.conversations()))["id"]]
            ws.delete_conversations(gone)
            touched[key] = gone
        else:
            raise ValueError(f"unknown mutation {m['op']!r}")
    return touched


def _release_commit(package_dir: Path) -> str:
    out = subprocess.run(["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _run(argv: list[str]) -> None:
    from iru_pipeline.cli import main

    code = main(argv)
    if code != 0:
        raise SystemExit(f"iru-pipeline {' '.join(argv)} exited {code}")


def make(out: Path) -> dict[str, Any]:
    import duckdb

    import iru_pipeline

    package_dir = Path(iru_pipeline.__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="release-db-"))
    (work / "data").mkdir()
    clock = Clock()
    try:
        with build_fake(clock) as fake:
            env = {"IRU_DUCKDB_PATH": str(work / "data" / "iru.duckdb"), "IRU_PII_KEY": PII_KEY, **fake.env()}
            for name in [n for n in os.environ if n.startswith(("INTERCOM_", "IRU_"))]:
                del os.environ[name]
            os.environ.update(env)
            _run(["run"])
            touched = apply_mutations(fake, clock)
            _run(["run"])
            _run(["export", "--out", str(work / "exports")])
        db = Path(env["IRU_DUCKDB_PATH"])
        con = duckdb.connect(str(db))
        con.execute("checkpoint")
        con.close()
        # The file is kept byte for byte as the release wrote it (a copy through COPY FROM
        # DATABASE would rewrite it with the copying version). Each of its ~40 tables takes at
        # least one 256 KiB block, so the file is ~14 MB but mostly empty: stored gzipped.
        out.parent.mkdir(parents=True, exist_ok=True)
        with db.open("rb") as src, gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        "release_commit": _release_commit(package_dir),
        "made_by": "PYTHONPATH=<release worktree> .venv/bin/python iru_pipeline_tests/data/release_db/"
                   f"make_release_db.py iru_pipeline_tests/data/release_db/{out.name}",
        "seed": SEED, "regions": list(REGIONS), "sizes": SIZES, "clock_epoch": EPOCH,
        "mutation_at": MUTATION_AT, "mutations": MUTATIONS, "touched": touched,
        "pii_key": PII_KEY, "runs": ["run", "run", "export"],
    }
    (out.parent / "release_db.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: PYTHONPATH=<release worktree> python make_release_db.py OUT.duckdb.gz")
    import iru_pipeline

    print(f"writing with the package at {Path(iru_pipeline.__file__).parent}", file=sys.stderr)
    result = make(Path(sys.argv[1]).resolve())
    print(json.dumps({k: result[k] for k in ("release_commit", "touched")}, indent=2))
