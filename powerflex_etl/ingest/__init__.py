"""Ingestion, engine-agnostic: the one orchestrator and the steps it sequences.

``plan`` (which windows a run covers), ``window`` (one window end to end), ``engine``
(where windows run: the submit abstraction, engines found by entry point), ``run`` (the
orchestrator, and the local engine), ``summary`` (run id, window summary, run report);
``dcm`` (all-or-nothing DCM snapshots; the answers become Arrow in ``parse/dcm.py``),
``housekeeping`` (compaction and the refresh after it).
"""
