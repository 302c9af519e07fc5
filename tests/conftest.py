"""Shared test setup. Fixtures live in tests/fixtures/*.py, one module per area."""

from __future__ import annotations

import os

# Prefect offline and quiet; never touch the developer's ~/.prefect
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# nothing in the environment may point tests at a real API or lake
for _k in [k for k in os.environ if k.startswith("POWERFLEX_") and k != "POWERFLEX_TEST_LONG"]:
    del os.environ[_k]

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.prefect",
    "tests.fixtures.s3",
]
