"""iru-pipeline: Intercom workspaces as a compliance source.

The data flows one way, and the subpackages follow it:

    intercom_client  ->  intercom_records  ->  intercom_source  ->  ingestion (Dagster)  ->  evidence  ->  export
    (httpx)              (records -> rows,      (dlt resources,       (dlt assets per           (SQL)          (auditor
                          PII, Arrow tables)     cursors)              region partition)                        folder)

`fake_intercom` is a self-contained fake of the Intercom API used by the demo, tests and
benchmarks; nothing in the pipeline imports it except the demo and the CLI that serves it.
"""

__version__ = "0.1.0"
