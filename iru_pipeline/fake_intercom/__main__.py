"""`python -m iru_pipeline.fake_intercom --port 8000 --contacts N ...` serves the fake."""

from __future__ import annotations

import sys

from .cli import build_arg_parser, main, run_from_args, serve

__all__ = ["build_arg_parser", "main", "run_from_args", "serve"]

if __name__ == "__main__":
    sys.exit(main())
