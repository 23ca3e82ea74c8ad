"""What makes a figure doubtful beyond its own output: more threads than cores, a hot SoC.

A result whose threads exceed the cores it could use is kept but never valid
(:func:`oversubscribed`, as each result comes). Once the whole run is known, it is warned about
once, and so is heat: a configuration at the profile's ``throttle_temp`` or above was probably
throttled.
"""

from __future__ import annotations

from edgebnn.device.errors import ErrorKind
from edgebnn.device.tune import parse_cpu_list


def oversubscribed(result, fingerprint: dict) -> None:
    """Record the cores ``result``'s configuration could use (a :class:`~edgebnn.device.protocol.BenchResult`,
    as the preflight's ``fingerprint`` tells them); more threads than those make it invalid.

    Threads beyond the online cores (or the CPUs it was pinned to) take turns on them: the figure
    measures the scheduler's time slicing, not the model at that thread count, so it is kept but
    never valid (a report shows it as such, and ``--tune`` never chooses it).
    """
    cores = fingerprint.get("cores")
    if not isinstance(cores, int) or cores < 1:
        return  # the device did not tell: nothing to hold the threads against
    if result.config.affinity:
        ids = fingerprint.get("cpu_ids") or list(range(cores))
        cores = len([cpu for cpu in parse_cpu_list(result.config.affinity) if cpu in ids]) or cores
    result.cores_available = cores
    if result.ok and result.config.threads > cores:
        where = f"the {cores} CPUs it is pinned to ({result.config.affinity})" if result.config.affinity else \
            f"the {cores} online cores the preflight saw"
        why = (f"threads={result.config.threads} exceed {where}: the threads take turns, so the figure is kept but "
               f"not valid; give --threads {cores} or fewer")
        result.valid = False
        if result.error_kind:  # already invalid for another reason: say both
            result.error = f"{result.error}; {why}"
        else:
            result.error_kind, result.error = ErrorKind.OVERSUBSCRIBED, why


def heat_warning(run) -> str:
    """A warning when the SoC reached the profile's ``throttle_temp`` during ``run`` (a
    :class:`~edgebnn.device.protocol.DeviceRun`), "" when it did not."""
    profile = run.profile
    # Each configuration's temperatures, not only the last: a hot SoC mid-sweep may cool by the end.
    readings = [(max(r.temps_c), f"threads={r.config.threads}") for r in run.results if r.temps_c]
    if run.temps.get("after") and not (run.results and run.results[-1].temps_c):
        readings.append((max(run.temps["after"]), "cleanup"))
    hot = [(t, when) for t, when in readings if t >= profile.throttle_temp]
    if not hot:
        return ""
    return (f"{profile.name} reached {max(t for t, _ in hot):.0f} C during the run (>= {profile.throttle_temp:g} C, "
            f"after {', '.join(dict.fromkeys(w for _, w in hot))}): those figures are probably throttled; add "
            f"cooling or a longer `cooldown` (now {profile.cooldown:g} s) for {profile.name} and run again")


def oversubscription_warning(run) -> str:
    """A warning naming the thread counts of ``run`` that exceeded the cores available ("" when none did)."""
    over = sorted({r.config.threads for r in run.results if r.ok and r.cores_available is not None
                   and r.config.threads > r.cores_available})
    if not over:
        return ""
    return (f"threads {', '.join(map(str, over))} exceed the cores available "
            f"({run.fingerprint.get('cores')} online): those figures are kept but marked invalid")
