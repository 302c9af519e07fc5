"""The embedded PowerFlex API: a real HTTP server replaying real ACN sessions.

    from powerflex_etl.simulator import SimulatorConfig, Faults, start_simulator
    with start_simulator(SimulatorConfig(seed=1, sample_period_s=60)) as sim:
        sim.url            # "http://127.0.0.1:PORT"
        sim.config.faults  # mutable Faults, read on every request
        sim.truth(measurement, start, end)  # exactly the rows a window serves

See ``data.py`` for the id mapping and how real days map onto requested days, and
``generate.py`` for how each session becomes telemetry.
"""

from __future__ import annotations

from powerflex_etl.simulator.app import create_app
from powerflex_etl.simulator.config import Faults, SimulatorConfig
from powerflex_etl.simulator.runner import RunningSimulator, serve, start_simulator

__all__ = [
    "Faults",
    "RunningSimulator",
    "SimulatorConfig",
    "create_app",
    "serve",
    "start_simulator",
]
