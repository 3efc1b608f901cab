"""The plumbing the network adapters share (paydesk.providers._http)."""

import asyncio
from collections.abc import Generator

import httpx
import pytest

from paydesk.exceptions import ProviderError, ProviderRequestError, ProviderUnavailable
from paydesk.providers._http import HttpTransport, JsonReply, PerLoop, adrive, drive


def _operation(log: list[str]) -> Generator[str, int, str]:
    first = yield "a"
    try:
        yield "fail"
    except ProviderUnavailable as exc:
        log.append(f"caught {exc.message}")
    second = yield "b"
    return f"{first}+{second}"


def _send(call: str) -> int:
    if call == "fail":
        raise ProviderUnavailable("lost", provider="x")
    return len(call) * (2 if call == "b" else 1)


def test_drive_sends_answers_in_and_throws_failures_in() -> None:
    log: list[str] = []
    assert drive(_operation(log), _send) == "1+2"
    assert log == ["caught lost"]


def test_adrive_runs_the_same_operation() -> None:
    log: list[str] = []

    async def send(call: str) -> int:
        return _send(call)

    assert asyncio.run(adrive(_operation(log), send)) == "1+2"
    assert log == ["caught lost"]


def test_only_the_named_failures_are_thrown_in() -> None:
    def operation() -> Generator[str, int, str]:
        try:
            yield "x"
        except Exception:  # pragma: no cover - must not be reached
            return "swallowed"
        return "done"

    def boom(call: str) -> int:
        raise KeyError(call)

    with pytest.raises(KeyError):
        drive(operation(), boom)

    def refused(call: str) -> int:
        raise ProviderRequestError("no", provider="x")

    assert drive(operation(), refused) == "swallowed"
    with pytest.raises(ProviderRequestError):
        drive(operation(), refused, throws=ProviderUnavailable)


class _Echo(HttpTransport[str, JsonReply]):
    def build(self, call: str) -> httpx.Request:
        return httpx.Request("GET", f"https://example.test/{call}")

    def read(self, call: str, response: httpx.Response) -> JsonReply:
        return JsonReply.read(response)

    def transport_error(self, call: str, exc: httpx.HTTPError) -> ProviderError:
        return ProviderUnavailable(f"{call}: {type(exc).__name__}", provider="echo")


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/down":
        raise httpx.ConnectError("refused", request=request)
    if request.url.path == "/text":
        return httpx.Response(502, text="Bad gateway")
    return httpx.Response(200, json={"path": request.url.path})


def test_the_transport_reads_answers_and_names_transport_failures() -> None:
    transport = _Echo(timeout=1, client=httpx.Client(transport=httpx.MockTransport(_handler)))
    assert transport.send("ok") == JsonReply(200, {"path": "/ok"}, '{"path":"/ok"}')
    assert transport.send("text") == JsonReply(502, None, "Bad gateway")
    with pytest.raises(ProviderUnavailable, match="down: ConnectError") as caught:
        transport.send("down")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_the_transport_async_side_uses_the_injected_client() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(_handler))
    transport = _Echo(timeout=1, async_client=client)

    async def go() -> JsonReply:
        assert transport.async_client is client
        with pytest.raises(ProviderUnavailable):
            await transport.asend("down")
        return await transport.asend("ok")

    assert asyncio.run(go()).data == {"path": "/ok"}


def test_per_loop_values_can_be_forgotten() -> None:
    values = PerLoop(object)

    async def twice() -> bool:
        first = values.get()
        popped = values.pop()
        return popped is first and values.get() is not first and values.pop() is not None

    assert asyncio.run(twice())
