"""A benchmark child's own peak memory (standard library only: children may run in a
competitor's venv that has nothing of this project)."""

from __future__ import annotations

import resource
import sys


def peak_mb() -> float:
    """This process's own peak RSS in MB (10^6 bytes): VmHWM on Linux. Not ru_maxrss, which a
    child started by subprocess (vfork, then exec) inherits from its parent (here, the data
    generator's peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024) / 1e6
