"""Compliance evidence derived from the raw Intercom tables (schema `evidence`).

    tables.py     the evidence tables (one SQL file each in sql/)
    controls.py   the control tests T01-T15 and their framework mappings
    params.py     parameters from IRU_EVIDENCE_CONFIG, with defaults
    inputs.py     optional human inputs (HR roster, approved exceptions, review decisions)
    raw.py        fixed-shape views over the raw tables
    session.py    one run's temp tables on a DuckDB connection
    manifest.py   deterministic table bytes and the manifest hash chain
    assets.py     the Dagster assets (one per table, plus the auditor export)
    checks.py     the Dagster asset checks (one per control test)

The project README ("Compliance evidence") describes the tables, parameters and the export.
"""
