"""Client IP addresses behind proxies, and per-provider webhook IP allowlists.

This module owns one decision: which IP address a request came from, given the proxies the
project trusts, and whether that address may deliver a provider's webhooks.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only as far
as trusted proxies vouch for it: only when ``REMOTE_ADDR`` (the TCP peer) is a trusted
proxy, and then walking the header from the RIGHT (the entry the nearest proxy appended)
past further trusted proxies. The first untrusted address is the client; anything to its
left is the client's own claim and is ignored. A client that sends ``X-Forwarded-For:
1.2.3.4`` straight to the server, or through a proxy, cannot make itself 1.2.3.4.

Settings: ``PAYDESK["SECURITY"]["TRUSTED_PROXIES"]`` (addresses or CIDR networks, e.g.
``["10.0.0.0/8", "::1"]``) and a provider's ``OPTIONS["WEBHOOK_IP_ALLOWLIST"]`` (when unset,
the backend's documented notifier addresses, ``default_webhook_ip_allowlist``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..exceptions import ConfigurationError
from .ratelimit import provider_options, security_settings

__all__ = ["IPAllowlist", "allowlist_for_provider", "client_ip", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: Any) -> IPAddress | None:
    """An address from a header or META value, or ``None`` if it is not one (never raises).

    Accepts what proxies write: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:443``, ``fe80::1%eth0``. IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes
    the IPv4 address, so IPv4 allowlists match dual-stack servers.
    """
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        address: IPAddress = value
    else:
        if not isinstance(value, str):
            return None
        text = value.strip().strip('"')
        if not text or len(text) > 100:
            return None
        port = ""
        if text.startswith("["):  # [v6]:port or [v6]
            text, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                return None
            port = rest[1:] if rest else ""
        elif text.count(":") == 1:  # v4:port
            text, _, port = text.partition(":")
            if not port:
                return None
        if port and not port.isdigit():
            return None
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _networks(values: Iterable[Any], *, setting: str) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        # A bare string would iterate as characters; this is always a settings mistake.
        raise ConfigurationError(f"{setting} must be a list of addresses or networks, not a str.")
    networks = []
    for value in values:
        try:
            # strict=False: "192.168.1.5/24" means the /24 it is in, as people write it.
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise ConfigurationError(
                f"{setting} has {value!r}, which is not an IP address or CIDR network "
                "(e.g. '203.0.113.7', '10.0.0.0/8', '2001:db8::/32')."
            ) from None
        networks.append(network)
    return tuple(networks)


def _in_any(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _meta(request_or_meta: Any) -> Mapping[str, Any]:
    meta = getattr(request_or_meta, "META", request_or_meta)
    if not isinstance(meta, Mapping):
        raise TypeError("client_ip() takes an HttpRequest or its META mapping.")
    return meta


def client_ip(request_or_meta: Any, trusted_proxies: Sequence[str] | None = None) -> str | None:
    """The client's IP address as a normalised string, or ``None`` if ``REMOTE_ADDR`` is not
    an address.

    ``trusted_proxies`` defaults to ``PAYDESK["SECURITY"]["TRUSTED_PROXIES"]``; pass ``()``
    to trust none. Malformed ``X-Forwarded-For`` entries are never followed: the walk stops
    at the nearest address a trusted proxy vouched for.
    """
    meta = _meta(request_or_meta)
    peer = meta.get("REMOTE_ADDR")
    known = _peer(peer) if isinstance(peer, str) else None
    remote, text = known or (parse_ip(peer), None)
    if remote is None:
        return None
    if trusted_proxies is None:
        trusted_proxies = security_settings()["TRUSTED_PROXIES"] or ()
    proxies = _networks(trusted_proxies, setting='PAYDESK["SECURITY"]["TRUSTED_PROXIES"]')
    if not _in_any(remote, proxies):
        return text or str(remote)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if not isinstance(forwarded, str):
        return str(remote)
    client = remote
    for entry in reversed(forwarded.split(",")):
        address = parse_ip(entry)
        if address is None:
            break  # garbage from the client's side: trust ends at the last good hop
        client = address
        if not _in_any(address, proxies):
            break
    return str(client)


@functools.lru_cache(maxsize=1024)
def _peer(value: str) -> tuple[IPAddress | None, str | None]:
    """``parse_ip`` of a ``REMOTE_ADDR`` and its normalised text, remembered.

    A webhook endpoint sees the same few peers (the provider's notifiers, or the proxy in
    front) on every request, and parsing and formatting an address is most of what
    ``client_ip`` costs. ``REMOTE_ADDR`` is the TCP peer, not a header a client writes, and
    the cache is bounded.
    """
    address = parse_ip(value)
    return address, (None if address is None else str(address))


class IPAllowlist:
    """Addresses and networks allowed to call; an empty allowlist allows everyone."""

    def __init__(self, networks: Sequence[str], *, setting: str = "IP allowlist") -> None:
        self.networks = _networks(networks, setting=setting)

    def __bool__(self) -> bool:
        """``True`` when the allowlist restricts anything."""
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"IPAllowlist({[str(n) for n in self.networks]!r})"

    def allows(self, ip: str | IPAddress | None) -> bool:
        if not self.networks:
            return True
        address = parse_ip(ip)
        return address is not None and _in_any(address, self.networks)


def allowlist_for_provider(alias: str) -> IPAllowlist:
    """The provider's ``OPTIONS["WEBHOOK_IP_ALLOWLIST"]``.

    When the option is not set, the backend's ``default_webhook_ip_allowlist`` (the notifier
    addresses a provider documents, e.g. NOWPayments'); when neither is, or the option is
    ``[]``, everyone is allowed.
    """
    configured = provider_options(alias).get("WEBHOOK_IP_ALLOWLIST")
    if configured is None:
        default, backend = _backend_default_allowlist(alias)
        if default:
            return IPAllowlist(default, setting=f"{backend}.default_webhook_ip_allowlist")
    return IPAllowlist(
        configured or [],
        setting=f'PAYDESK["PROVIDERS"][{alias!r}]["OPTIONS"]["WEBHOOK_IP_ALLOWLIST"]',
    )


def _backend_default_allowlist(alias: str) -> tuple[tuple[str, ...], str]:
    from ..conf import paydesk_settings
    from ..providers.registry import load_backend

    params = (paydesk_settings.get("PROVIDERS") or {}).get(alias) or {}
    try:
        cls = load_backend(params.get("BACKEND"))
    except ConfigurationError:
        return (), ""  # an unloadable backend is reported by the registry and checks
    return tuple(cls.default_webhook_ip_allowlist), f"{cls.__module__}.{cls.__qualname__}"
