"""Intercom records as table rows: value coercions, pseudonyms, and the Arrow tables of
contacts and conversations.

Nothing here imports dlt or Dagster, so the worker processes that build tables in parallel
(`table_workers.py`) start in a fraction of a second. The dlt source (`intercom_source`)
uses these to turn API pages into rows.
"""
