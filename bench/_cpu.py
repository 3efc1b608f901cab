"""Where the machine's CPU went during a run: the bench's processes, or someone else's.

On a small shared machine a throughput figure means little without knowing whether
something else was running. This reads Linux's ``/proc``: the machine's busy time from
``/proc/stat`` and the CPU time of the processes under test (this process and its
descendants, i.e. the load generator and gunicorn, plus the PostgreSQL server this bench
uses and its backends). Busy time not spent by those is reported as "others". Elsewhere
(no ``/proc``) it reports nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class Sample:
    total: int  # clock ticks, all CPUs
    busy: int
    interrupts: int  # irq + softirq: mostly loopback networking, not charged to a process
    client: int  # this process (the load generator)
    server: int  # its descendants (gunicorn)
    database: int  # the PostgreSQL server and its backends


@dataclass(frozen=True)
class Usage:
    """Shares of one CPU (1.0 = one core fully busy) over an interval."""

    cpus: int
    client: float
    server: float
    database: float
    interrupts: float
    others: float
    idle: float

    def __str__(self) -> str:
        return (
            f"CPU (share of one core; {self.cpus} cores): gunicorn {self.server:.0%}, "
            f"PostgreSQL {self.database:.0%}, load generator {self.client:.0%}, "
            f"irq {self.interrupts:.0%}, other processes {self.others:.0%}, "
            f"idle {self.idle:.0%}"
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return text[text.rindex(")") + 2 :].split()


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system ticks) for every process we can read."""
    found: dict[int, tuple[int, int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12)
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _tree(roots: set[int], processes: dict[int, tuple[int, int]]) -> set[int]:
    members = {pid for pid in roots if pid in processes}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _ticks) in processes.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return members


class CpuMeter:
    def __init__(self, database_pid: int | None = None) -> None:
        self.database_pid = database_pid
        self.available = (_PROC / "stat").exists()

    def sample(self) -> Sample | None:
        if not self.available:
            return None
        try:
            first = (_PROC / "stat").read_text().splitlines()[0].split()
        except OSError:
            return None
        ticks = [int(value) for value in first[1:9]]  # user .. steal (guests are inside user)
        total = sum(ticks)
        idle = ticks[3] + ticks[4]  # idle + iowait
        processes = _processes()
        me = os.getpid()
        server = _tree({me}, processes) - {me}
        database = _tree({self.database_pid}, processes) if self.database_pid else set()

        def cpu(pids: set[int]) -> int:
            return sum(processes[pid][1] for pid in pids)

        return Sample(
            total=total,
            busy=total - idle,
            interrupts=ticks[5] + ticks[6],
            client=processes[me][1] if me in processes else 0,
            server=cpu(server),
            database=cpu(database),
        )

    @staticmethod
    def usage(start: Sample | None, end: Sample | None) -> Usage | None:
        if start is None or end is None or end.total <= start.total:
            return None
        cpus = os.cpu_count() or 1
        scale = cpus / (end.total - start.total)  # ticks -> shares of one core

        def share(name: str) -> float:
            return float(getattr(end, name) - getattr(start, name)) * scale

        busy = share("busy")
        parts = {name: share(name) for name in ("client", "server", "database", "interrupts")}
        return Usage(
            cpus=cpus,
            others=max(0.0, busy - sum(parts.values())),
            idle=cpus - busy,
            **parts,
        )


def postgres_postmaster_pid() -> int | None:
    """The pid of the PostgreSQL server behind Django's default connection, if readable."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            directory = Path(str(cursor.fetchone()[0]))
        return int((directory / "postmaster.pid").read_text().split()[0])
    except Exception:  # not superuser, another machine, unreadable file: just don't count it
        return None


def wait_for_quiet(*, threshold: float, timeout: float, window: float = 1.0) -> float | None:
    """Wait until the machine is nearly idle (busy < ``threshold`` of a core over ``window``).

    Called between runs, when nothing of the bench is working, so whatever is busy is
    someone else. Returns the seconds waited, or ``None`` if it never got quiet (or this is
    not Linux).
    """
    import time

    def busy() -> tuple[int, int] | None:
        try:
            first = (_PROC / "stat").read_text().splitlines()[0].split()
        except OSError:
            return None
        ticks = [int(value) for value in first[1:9]]
        return sum(ticks), sum(ticks) - ticks[3] - ticks[4]

    started = time.monotonic()
    cpus = os.cpu_count() or 1
    while True:
        before = busy()
        time.sleep(window)
        after = busy()
        if before is None or after is None or after[0] <= before[0]:
            return None
        share = (after[1] - before[1]) * cpus / (after[0] - before[0])
        if share < threshold:
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return None
