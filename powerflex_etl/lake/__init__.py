"""The lake: Parquet slot files, their lock, state and housekeeping (CONTRACT §3).

``layout`` names every path and file; ``store.Lake`` commits and reads; ``state.State``
keeps watermarks and window records; ``lock`` gives one writer per measurement;
``compact`` rewrites partitions that something else wrote into.
"""

from powerflex_etl.lake.state import State, WindowRecord
from powerflex_etl.lake.store import CommitResult, Lake
from powerflex_etl.lake.url import LakeUrl

__all__ = ["CommitResult", "Lake", "LakeUrl", "State", "WindowRecord"]
