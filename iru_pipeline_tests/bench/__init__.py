"""Benchmarks of iru-pipeline against the bundled fake Intercom (`make bench`).

Entry point: `python -m iru_pipeline_tests.bench` (see `__main__.py` and README.md). Every
measured scenario runs in its own process, the fake in another; nothing here is collected by
pytest and nothing asserts on time.
"""
