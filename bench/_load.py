"""A bounded load generator on loopback: C client threads for a fixed time.

Two clients:

* ``httpx`` (the default): each thread owns an ``httpx.Client`` (keep-alive where the server
  allows it; gunicorn's sync workers close every connection, so there every request includes
  a loopback connect). Realistic, but it costs about as much CPU per request as the bare
  Django view it measures, and on a small machine that CPU is taken from the server.
* ``raw``: each request is pre-encoded HTTP/1.1 bytes (``Connection: close``) written to a
  fresh socket, and the answer is read to the end; only its status line is parsed. A
  fraction of httpx's CPU, so the figures are closer to what the server alone can do.

Bodies are built and signed before the clock starts; one that has waited longer than
``resign_after`` seconds is signed again, with a fresh timestamp, so a long run never trips
the receiver's timestamp tolerance. Only 2xx answers count as deliveries; everything else is
counted apart.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

#: Builds unique event number ``k``: returns the raw body to send.
MakeBody = Callable[[int], bytes]
#: Signs a body: returns the request headers (signature included).
Sign = Callable[[bytes], Mapping[str, str]]


@dataclass
class _Signed:
    body: bytes
    headers: Mapping[str, str]
    signed_at: float


class Deliveries:
    """Unique signed deliveries, with every ``duplicate_every``-th request a resend.

    A resend repeats the exact body of a delivery already sent in this scenario (same event
    id), as a provider does when it did not see the first answer.
    """

    def __init__(
        self,
        make_body: MakeBody,
        sign: Sign,
        *,
        pregenerate: int,
        duplicate_every: int = 10,
        resign_after: float = 120.0,
    ) -> None:
        self._make_body = make_body
        self._sign = sign
        self._duplicate_every = duplicate_every
        self._resign_after = resign_after
        self._lock = threading.Lock()
        self._items: list[_Signed] = []
        self._requests = 0
        self.unique_sent = 0
        self.duplicates_sent = 0
        self.resigned = 0
        self._extend(pregenerate)

    def _extend(self, count: int) -> None:
        now = time.time()
        start = len(self._items)
        for k in range(start, start + count):
            body = self._make_body(k)
            self._items.append(_Signed(body, self._sign(body), now))

    def take(self, rng: random.Random) -> tuple[bytes, Mapping[str, str]]:
        with self._lock:
            self._requests += 1
            resend = (
                self._duplicate_every > 0
                and self._requests % self._duplicate_every == 0
                and self.unique_sent > 0
            )
            if resend:
                index = rng.randrange(self.unique_sent)
                self.duplicates_sent += 1
            else:
                index = self.unique_sent
                if index >= len(self._items):
                    self._extend(max(100, len(self._items) // 4))
                self.unique_sent += 1
            item = self._items[index]
            if time.time() - item.signed_at > self._resign_after:
                item = _Signed(item.body, self._sign(item.body), time.time())
                self._items[index] = item
                self.resigned += 1
            return item.body, item.headers


@dataclass
class LoadResult:
    ok: int = 0
    elapsed: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    #: What ``probe`` returned when measuring began and after the last request.
    probe_start: Any = None
    probe_end: Any = None

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.exceptions.values())

    @property
    def errors(self) -> int:
        return self.total - self.ok

    @property
    def error_rate(self) -> float:
        return self.errors / self.total if self.total else 1.0

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: Sends one request; returns (status, a short excerpt of the body for error reports).
Send = Callable[[bytes, Mapping[str, str]], tuple[int, str]]


class RawClient:
    """HTTP/1.1 over a new socket per request, ``Connection: close``, read to EOF."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"the raw client needs a host and a port: {url!r}")
        self.address = (parts.hostname, parts.port)
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
        ).encode()
        self.timeout = timeout

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = self.head + f"{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        if not answer.startswith(b"HTTP/1.") or len(answer) < 12:
            raise httpx.RemoteProtocolError(f"not an HTTP answer: {answer[:80]!r}")
        return int(answer[9:12]), answer.partition(b"\r\n\r\n")[2][:300].decode(errors="replace")


def run(
    url: str,
    deliveries: Deliveries,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    timeout: float = 30.0,
    probe: Callable[[], Any] | None = None,
    client: str = "httpx",
) -> LoadResult:
    """POST deliveries to ``url`` from ``concurrency`` threads; measure after ``warmup``.

    ``probe`` (e.g. a CPU meter) is called when measuring begins and when it has ended.
    """
    result = LoadResult()
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)
    clock: dict[str, float] = {}
    last_finish = [0.0]

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        statuses: Counter[int] = Counter()
        exceptions: Counter[str] = Counter()
        latencies: list[float] = []
        samples: list[str] = []
        ok = 0
        finished = 0.0
        with contextlib.ExitStack() as stack:
            if client == "raw":
                send: Send = RawClient(url, timeout)
            else:
                session = stack.enter_context(httpx.Client(timeout=timeout))

                def send(body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
                    response = session.post(url, content=body, headers=headers)
                    return response.status_code, response.text[:300]

            start_gate.wait()
            measure_from, stop_at = clock["measure_from"], clock["stop_at"]
            while True:
                began = time.perf_counter()
                if began >= stop_at:
                    break
                body, headers = deliveries.take(rng)
                status: int | None = None
                error: Any = None
                try:
                    status, excerpt = send(body, headers)
                    if not 200 <= status < 300 and len(samples) < 3:
                        samples.append(f"{status}: {excerpt}")
                except (httpx.HTTPError, OSError) as exc:
                    error = exc
                    if len(samples) < 3:
                        samples.append(f"{type(exc).__name__}: {exc}")
                done = time.perf_counter()
                if began < measure_from:
                    continue  # warm-up: workers import, connect and fill their caches
                finished = done
                latencies.append(done - began)
                if error is not None:
                    exceptions[type(error).__name__] += 1
                else:
                    assert status is not None
                    statuses[status] += 1
                    ok += 200 <= status < 300
        with lock:
            result.ok += ok
            result.statuses.update(statuses)
            result.exceptions.update(exceptions)
            result.latencies.extend(latencies)
            result.error_samples.extend(samples[: max(0, 5 - len(result.error_samples))])
            last_finish[0] = max(last_finish[0], finished)

    threads = [
        threading.Thread(target=worker, args=(seed,), name=f"load-{seed}", daemon=True)
        for seed in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    clock["measure_from"] = now + warmup
    clock["stop_at"] = now + warmup + duration
    start_gate.wait()
    time.sleep(max(0.0, clock["measure_from"] - time.perf_counter()))
    if probe is not None:
        result.probe_start = probe()
    for thread in threads:
        thread.join(timeout=warmup + duration + timeout + 30)
        if thread.is_alive():
            raise RuntimeError(f"load thread {thread.name} did not finish")
    if probe is not None:
        result.probe_end = probe()
    result.elapsed = max(last_finish[0] - clock["measure_from"], 1e-9)
    return result
