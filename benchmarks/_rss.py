"""Run a command; print its wall time, CPU time and the peak RSS of its largest process, as JSON.

``ru_maxrss`` of RUSAGE_CHILDREN is the peak of the largest descendant waited for (a
grandchild such as Prefect's temporary API server included), so each measurement runs in a
fresh interpreter of this script. CPU seconds (user + system of all those descendants) are
less sensitive than wall time to other work on a shared machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

if __name__ == "__main__":
    t0 = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "rc": proc.returncode,
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
            }
        )
    )
