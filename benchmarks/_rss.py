"""Run a command; print its wall time, CPU time and the peak RSS of its largest process, as JSON.

``ru_maxrss`` of RUSAGE_CHILDREN is the peak of the largest descendant waited for (a
grandchild such as Prefect's temporary API server included), so each measurement runs in a
fresh interpreter of this script. CPU seconds (user + system of all those descendants) are
less sensitive than wall time to other work on a shared machine. ``steal_share`` is the
share of the machine's cores its hypervisor gave to other guests during the run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, all cores (``/proc/stat``), else 0."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    stolen = steal_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    stolen = steal_seconds() - stolen
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "rc": proc.returncode,
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                # a virtual machine's cores taken by its neighbours meanwhile: a run with
                # a few % of steal is not a quiet one, whatever the load average says
                "steal_share": stolen / (seconds * (os.cpu_count() or 1)),
                "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
            }
        )
    )
