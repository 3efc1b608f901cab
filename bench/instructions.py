"""CPU instructions per webhook delivery: paydesk against the bare baseline view, counted.

Run by ``make bench`` (inside ``scripts/with-postgres``); not part of the test suite. By hand::

    scripts/with-postgres .venv/bin/python bench/instructions.py [--requests 100]

``bench/webhooks.py`` measures throughput, which on a small shared machine moves with
whatever else runs on it (another process's test suite can move a figure by a third).
This counts instead: each scenario's requests go through the WSGI application in one
process running under valgrind's callgrind, and the instructions the worker executes for
them are read from callgrind's counters, which do not depend on the machine's load. The
same requests as the throughput bench (the bench project, signed sandbox
``payment.succeeded`` deliveries, each (a) delivery completing a different payment):

(a) paydesk's endpoint, ``WEBHOOKS["PROCESS"] = "inline"``;
(b) paydesk's endpoint, ``"task"`` on the database task backend;
(c) the baseline view that INSERTs the raw body.

It prints instructions per request and the ratios c/a and c/b (what a/c and b/c of the
throughput bench would be if the worker's CPU were all that counted). Only the Python
process is counted: PostgreSQL's share and the HTTP server's are not (the throughput
bench reports those). A run takes about a minute per scenario; repeated runs agree to
within about 1 %.

How the counting is bounded: callgrind zeroes its counters when ``zlib.adler32`` is
called (``--zero-before=zlib_adler32``) and writes them out when ``zlib.crc32`` is
(``--dump-before=zlib_crc32``); the child calls one just before its measured loop and the
other just after, and nothing else in the loop uses either. This needs CPython's zlib
module with its symbols (not stripped), as pyenv and Debian build it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench._project.settings")

WARMUP = 30
PATHS = {"a": "/paydesk/webhooks/sandbox/", "b": "/paydesk/webhooks/sandbox/", "c": "/baseline/"}
PROCESS = {"a": "inline", "b": "task", "c": "inline"}
LABELS = {
    "a": "paydesk, full pipeline (inline)",
    "b": "paydesk, accept + enqueue (task)",
    "c": "baseline: bare view, one INSERT",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="measured per scenario")
    parser.add_argument("--scenarios", default="c,b,a", help="a comma-separated subset")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--snapshots", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.scenarios = [key.strip() for key in args.scenarios.split(",") if key.strip()]
    if not args.scenarios or set(args.scenarios) - set(PATHS):
        parser.error("--scenarios takes a comma-separated subset of a, b, c")
    if args.requests <= 0:
        parser.error("--requests must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(
            "bench/instructions.py: valgrind is not installed, nothing counted "
            "(Debian: apt-get install valgrind)."
        )
        return 0
    import django

    django.setup()
    from bench import _fixtures
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    count = WARMUP + args.requests
    snapshots = _fixtures.create_payments(0, count * len(args.scenarios), prefix="instr")
    print(f"paydesk instruction count, {args.requests} requests per scenario after {WARMUP}")
    from bench.webhooks import source_state

    print(source_state())
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="paydesk-instr-") as tmp:
        for index, key in enumerate(args.scenarios):
            mine = snapshots[index * count : (index + 1) * count]
            path = Path(tmp) / f"snapshots-{key}.json"
            path.write_text(json.dumps(mine))
            out = Path(tmp) / key
            out.mkdir()
            command = [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}/callgrind.out.%p",
                "--zero-before=zlib_adler32",
                "--dump-before=zlib_crc32",
                sys.executable,
                __file__,
                "--child",
                key,
                "--snapshots",
                str(path),
                "--requests",
                str(args.requests),
            ]
            env = {**os.environ, "BENCH_WEBHOOK_PROCESS": PROCESS[key]}
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")
                print(f"bench/instructions.py: scenario ({key}) failed under valgrind")
                return 1
            dumps = sorted(out.glob("callgrind.out.*.1"))
            if not dumps:
                print(
                    "bench/instructions.py: callgrind wrote no dump for the measured loop: "
                    "is CPython's zlib module stripped of its symbols (zlib_adler32)?"
                )
                return 1
            total = _total(dumps[0])
            counts[key] = total // args.requests
            print(f"({key}) {LABELS[key]}: {counts[key]:>12,} instructions per request")
    if "c" in counts:
        for key in ("a", "b"):
            if key in counts:
                ratio = counts["c"] / counts[key]
                print(f"c/{key} = {ratio:.2f}  (instructions of (c) over those of ({key}))")
    return 0


def _total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def child(args: argparse.Namespace) -> int:
    """Under valgrind: warm up, then the measured loop between adler32 and crc32."""
    import django

    django.setup()
    from bench import _fixtures
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    # Under valgrind everything runs ~50 times slower: a drain task every DRAIN_INTERVAL
    # (0.5 s) would be one per few requests instead of one per several hundred as in real
    # time, and its INSERT would be counted against each delivery. Keep its real share.
    webhooks = {**settings.PAYDESK.get("WEBHOOKS", {}), "DRAIN_INTERVAL": 60}
    override_settings(PAYDESK={**settings.PAYDESK, "WEBHOOKS": webhooks}).enable()
    snapshots = json.loads(Path(args.snapshots).read_text())
    sign = _fixtures.sandbox_signer()
    make = _fixtures.body_maker(snapshots)
    app = WSGIHandler()
    path = PATHS[args.child]
    environs = [_environ(make(k), sign, path) for k in range(WARMUP + args.requests)]

    def call(environ: dict[str, object]) -> None:
        statuses: list[str] = []
        body = app(environ, lambda status, headers: statuses.append(status))
        b"".join(body)
        body.close()
        if not statuses[0].startswith("20"):
            raise RuntimeError(f"({args.child}) answered {statuses[0]}")

    for environ in environs[:WARMUP]:
        call(environ)
    zlib.adler32(b"")  # callgrind: zero the counters
    for environ in environs[WARMUP:]:
        call(environ)
    zlib.crc32(b"")  # callgrind: dump them
    return 0


def _environ(body: bytes, sign: object, path: str) -> dict[str, object]:
    headers = sign(body)  # type: ignore[operator]
    environ: dict[str, object] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        # What the throughput bench's raw client sends.
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "paydesk-bench",
        "HTTP_ACCEPT": "*/*",
        "HTTP_CONNECTION": "close",
    }
    for name, value in headers.items():
        if name.lower() != "content-type":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


if __name__ == "__main__":
    raise SystemExit(main())
