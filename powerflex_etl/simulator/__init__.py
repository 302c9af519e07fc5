"""The embedded PowerFlex API: a real HTTP server replaying real ACN sessions.

INTERFACE (stub; being implemented). Public surface used by tests, the demo and benchmarks:

    from powerflex_etl.simulator import SimulatorConfig, Faults, start_simulator
    sim = start_simulator(SimulatorConfig(seed=1, sample_period_s=60))   # loopback, free port
    sim.url            # "http://127.0.0.1:PORT"
    sim.config.faults  # mutable Faults, read on every request
    sim.truth(measurement, start, end) -> pyarrow.Table   # exactly the rows a window serves
    sim.stop()
"""
