"""A venv of its own for dlt, made once under a cache directory and reused.

dlt brings its own dependency tree (sqlglot, orjson, pendulum, ...), which must not leak
into the project's ``.venv``; its Arrow and numpy are pinned to the project's, so both sides run the
same Parquet writer. The venv is rebuilt when the pins change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DLT_VERSION = "1.31.0"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/powerflex-etl-bench`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "powerflex-etl-bench"


def _pins() -> list[str]:
    import numpy
    import pyarrow

    return [
        f"dlt[parquet]=={DLT_VERSION}",
        f"pyarrow=={pyarrow.__version__}",
        f"numpy=={numpy.__version__}",
        "requests",
    ]


def dlt_python() -> str:
    """The python of a venv with dlt installed (made on first use: a minute or two)."""
    pins = _pins()
    venv = cache_dir() / f"dlt-{DLT_VERSION}"
    py = venv / "bin" / "python"
    stamp = venv / ".pins"
    if py.exists() and stamp.exists() and stamp.read_text() == "\n".join(pins):
        return str(py)
    print(f"making a venv for dlt at {venv} (once): pip install {' '.join(pins)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"could not install dlt into {venv}: {tail[0]}; check pip's access")
    stamp.write_text("\n".join(pins))
    return str(py)


if __name__ == "__main__":
    print(dlt_python())
