"""iru-pipeline: Intercom workspaces as a compliance source.

The data flows one way, and the subpackages follow it:

    intercom_client  ->  intercom_source  ->  ingestion (Dagster)  ->  evidence (SQL)  ->  export
    (httpx)              (dlt resources,       (dlt assets per           (evidence.*       (auditor
                          cursors, PII)         region partition)          tables)           folder)

`fake_intercom` is a self-contained fake of the Intercom API used by the demo, tests and
benchmarks; nothing in the pipeline imports it except the demo and the CLI that serves it.
"""

__version__ = "0.1.0"
