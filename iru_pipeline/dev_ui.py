"""`make ui`: the Dagster UI against the bundled fake Intercom, offline.

Serves the fake for US, EU and AU on loopback in this process, then runs `dagster dev` with
the fake's tokens, a demo PII key and DAGSTER_HOME in the data folder (where the DuckDB
writer pool is limited to one step at a time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from iru_pipeline.demo import DEMO_PII_KEY, write_demo_evidence_inputs
from iru_pipeline.regions import REGION_CODES


def main() -> int:
    from iru_pipeline.config import DEFAULT_DUCKDB_PATH, load_settings
    from iru_pipeline.fake_intercom import FakeIntercom
    from iru_pipeline.runner import prepare_instance
    from iru_pipeline.storage import restrict_umask

    restrict_umask()  # inherited by `dagster dev` and its daemon, webserver and run processes
    port = int(os.environ.get("IRU_FAKE_PORT", "8710"))
    fake = FakeIntercom(seed=7, contacts=3000, conversations=2000)
    fake.start(ports={r: port + i for i, r in enumerate(REGION_CODES)})
    try:
        env = dict(os.environ)
        for region in REGION_CODES:
            env[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = fake.token(region)
            env[f"INTERCOM_BASE_URL_{region.upper()}"] = fake.base_url(region)
            print(f"fake Intercom {region.upper()}: {fake.base_url(region)}")
        env.setdefault("IRU_PII_KEY", DEMO_PII_KEY)
        env.setdefault("IRU_DUCKDB_PATH", str(DEFAULT_DUCKDB_PATH))
        if "IRU_EVIDENCE_CONFIG" not in env:
            folder = Path(env["IRU_DUCKDB_PATH"]).parent / "demo-evidence"
            env["IRU_EVIDENCE_CONFIG"] = str(write_demo_evidence_inputs(fake, folder))
        settings = load_settings(env=env)
        prepare_instance(settings)
        env["DAGSTER_HOME"] = str(settings.dagster_home.resolve())
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(Path("workspace.yaml"))]
        print("starting:", " ".join(cmd), flush=True)
        try:
            return subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            return 0
    finally:
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
