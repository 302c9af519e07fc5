"""Prefect only: flows hand the library's orchestrator Prefect tasks, and add retries,
artifacts and run logs. ``engine.py`` is what ``--engine prefect`` loads (an entry point)."""
