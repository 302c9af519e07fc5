"""Run a command; print its wall time and the peak RSS of its largest process, as JSON.

``ru_maxrss`` of RUSAGE_CHILDREN is the peak of the largest descendant waited for, so each
measurement runs in a fresh interpreter of this script.
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
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "rc": proc.returncode,
                "seconds": seconds,
                "peak_rss_mb": peak_kb / 1024,
                "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
            }
        )
    )
