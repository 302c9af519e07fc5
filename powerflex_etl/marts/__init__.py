"""Derived tables: what every write keeps current so the marts answer from them, not raw telemetry.

``sessionize`` (the rules that cut sessions, two vectorised passes), ``regions`` (how far a
change reaches), ``slots`` (what a slot write records for them), ``refresh`` (bring the derived
tables up to date with the raw lake: incrementally, or all of them), ``sql/derived/`` (the
per-session aggregates, in DuckDB).
"""
