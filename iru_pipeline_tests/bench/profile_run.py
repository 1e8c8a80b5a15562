"""`python -m iru_pipeline_tests.bench.profile_run OUT.json ARGS...`: the product's command line
(`iru_pipeline.cli.main(ARGS)`) under the bench's sampling profiler (`sampler.py`), every
thread of this process; the profile is written to OUT.json. Table worker processes are not
sampled. The exit status is the command's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from iru_pipeline_tests.bench.sampler import Sampler

INTERVAL_S = 0.01
"""Coarser than the dlt profile's 5 ms: Dagster's stacks are deep and a run lasts minutes."""


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    from iru_pipeline.cli import main as cli_main

    sampler = Sampler(interval=INTERVAL_S)
    with sampler:
        try:
            code = cli_main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    out.write_text(json.dumps(sampler.report(top=300), indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
