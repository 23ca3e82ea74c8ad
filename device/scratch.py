"""The scratch folder each configuration runs in on the device, and the scripts that manage it.

A configuration runs in a scratch folder under the device's ``workdir`` (``run-<random>``, one
name per run, made and removed for each configuration), which the wrapper removes once the
runtime is dead, reading the SoC's temperatures in the same round trip; what a failed configuration left (the wrapper itself
killed, the link lost) is removed by :data:`END_SCRATCH` at the end of the run. The scripts are
constants: paths and limits reach them as positional arguments, never spliced into them.
"""

from __future__ import annotations

from edgebnn.device.preflight import TEMPS
from edgebnn.device.transport import KILL_GRACE

TEMPS_MARK = "edgebnn-temps: "  # starts the wrapper's line of temperatures on stderr
# Runs the runtime ("$@") in the scratch folder "$1" under a time limit of "$3" seconds, removes
# the folder, and reports the SoC temperatures (of the thermal zones "$2" names) on stderr: in the
# happy path a configuration costs one round trip, cleanup included.
# The runtime gets a process group of its own (setsid) with its `timeout`, recorded in .pgid. A
# watchdog reads our stdin, which edgebnn holds open and never writes: it ends when edgebnn does
# (Ctrl-C, SIGKILL, a closed SSH channel), and then the whole group is killed. Only once the
# runtime is dead is the scratch folder removed; SIGPIPE is ignored so that a message to a stderr
# nobody reads any more (edgebnn is gone) cannot end the wrapper before its cleanup.
IN_SCRATCH = r"""
trap '' PIPE
scratch=$1 zones=$2 limit=$3; shift 3
mkdir -p "$scratch" && cd "$scratch" || exit 125
exec 3<&0
if command -v setsid >/dev/null 2>&1; then
  setsid timeout -k KILL_GRACE "$limit" "$@" </dev/null 3<&- &
else
  timeout -k KILL_GRACE "$limit" "$@" </dev/null 3<&- &
fi
pid=$!
echo "$pid" > .pgid
(while read -r _ <&3; do :; done; kill -KILL -"$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null) &
watch=$!
exec 3<&-
wait "$pid"; status=$?
kill "$watch" 2>/dev/null
kill -KILL -"$pid" 2>/dev/null
cd / && rm -rf "$scratch"
printf 'TEMPS_MARK' >&2; (TEMPS) >&2
exit $status
""".replace("(TEMPS)", "(" + TEMPS + ")").replace("KILL_GRACE", str(KILL_GRACE)).replace("TEMPS_MARK", TEMPS_MARK)
# Ends what a configuration left in the scratch folder "$1" (its runtime's group, when that
# group's leader still works in the folder: a pid reused since is never touched), then removes it.
END_SCRATCH = r"""
scratch=$1 zones=$2
if [ -f "$scratch/.pgid" ]; then
  pg=$(cat "$scratch/.pgid")
  [ "$(readlink "/proc/$pg/cwd" 2>/dev/null)" = "$scratch" ] && kill -KILL -"$pg" 2>/dev/null
fi
rm -rf "$scratch"
TEMPS
""".replace("TEMPS", TEMPS)


def in_scratch(argv: list[str], *, scratch: str, zones: str, limit: float) -> list[str]:
    """``argv`` run by :data:`IN_SCRATCH` in the folder ``scratch``, killed after ``limit`` seconds;
    ``zones``: the thermal zones read afterwards."""
    return ["sh", "-c", IN_SCRATCH, "sh", scratch, zones, f"{limit:g}", *argv]


def end_scratch(scratch: str, zones: str) -> list[str]:
    """The command of :data:`END_SCRATCH`: end and remove what is left in ``scratch``, read ``zones``."""
    return ["sh", "-c", END_SCRATCH, "sh", scratch, zones]


def split_temps(stderr: str) -> tuple[str, str | None]:
    """The runtime's own stderr, and the temperatures :data:`IN_SCRATCH` appended (None: not read)."""
    lines = stderr.splitlines()
    temps = [line[len(TEMPS_MARK):] for line in lines if line.startswith(TEMPS_MARK)]
    return "\n".join(line for line in lines if not line.startswith(TEMPS_MARK)), temps[-1] if temps else None
