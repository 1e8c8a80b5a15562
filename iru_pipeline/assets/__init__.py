"""Dagster assets: ingestion (dlt, partitioned by region) and evidence (SQL over DuckDB)."""
