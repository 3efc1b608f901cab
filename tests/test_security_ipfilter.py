"""Client IPs behind trusted proxies, and webhook IP allowlists."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory, override_settings

from paydesk.exceptions import ConfigurationError
from paydesk.security.ipfilter import IPAllowlist, allowlist_for_provider, client_ip, parse_ip

PROXIES = ["10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48"]


def meta(remote: str | None, xff: str | None = None) -> dict[str, str]:
    out = {}
    if remote is not None:
        out["REMOTE_ADDR"] = remote
    if xff is not None:
        out["HTTP_X_FORWARDED_FOR"] = xff
    return out


# --- client_ip -------------------------------------------------------------------------------


def test_without_trusted_proxies_x_forwarded_for_is_ignored():
    assert client_ip(meta("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"
    assert client_ip(meta("203.0.113.9", "1.2.3.4"), PROXIES) == "203.0.113.9"


def test_a_spoofed_header_sent_directly_by_an_untrusted_client_is_ignored():
    # The client forges "I am 10.1.1.1 behind your proxy": REMOTE_ADDR is not a proxy.
    assert client_ip(meta("198.51.100.23", "10.1.1.1, 192.168.1.1"), PROXIES) == "198.51.100.23"


def test_one_trusted_proxy():
    assert client_ip(meta("10.0.0.5", "198.51.100.23"), PROXIES) == "198.51.100.23"


def test_spoofed_entries_left_of_the_real_client_are_ignored():
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real peer.
    assert client_ip(meta("10.0.0.5", "1.2.3.4, 198.51.100.23"), PROXIES) == "198.51.100.23"


def test_multi_hop_chains_walk_past_trusted_proxies_from_the_right():
    chain = "1.2.3.4, 198.51.100.23, 10.9.9.9, 192.168.1.1"
    assert client_ip(meta("10.0.0.5", chain), PROXIES) == "198.51.100.23"
    # Every hop trusted (a request from inside): the leftmost address.
    assert client_ip(meta("10.0.0.5", "10.1.1.1, 10.2.2.2"), PROXIES) == "10.1.1.1"


def test_ipv6_remote_proxies_and_clients():
    assert client_ip(meta("2001:db8:ffff::1", "2001:db8:1::42"), PROXIES) == "2001:db8:1::42"
    assert client_ip(meta("2001:db8:ffff::1", "[2001:db8:1::42]:4711"), PROXIES) == "2001:db8:1::42"
    assert client_ip(meta("2001:db8:1::1", "203.0.113.1"), PROXIES) == "2001:db8:1::1"
    # Addresses are normalised.
    assert client_ip(meta("2001:0DB8:0000::0001"), ()) == "2001:db8::1"
    # IPv4-mapped peers (dual-stack servers) are the IPv4 address.
    assert client_ip(meta("::ffff:10.0.0.5", "198.51.100.23"), PROXIES) == "198.51.100.23"
    assert client_ip(meta("::ffff:198.51.100.23"), ()) == "198.51.100.23"


def test_ports_in_forwarded_entries_are_dropped():
    assert client_ip(meta("10.0.0.5", "198.51.100.23:55123"), PROXIES) == "198.51.100.23"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("", "10.0.0.5"),
        ("   ", "10.0.0.5"),
        ("garbage", "10.0.0.5"),
        ("198.51.100.23, not-an-ip", "10.0.0.5"),  # never walks past garbage
        ("not-an-ip, 10.3.3.3", "10.3.3.3"),  # stops at the last vouched-for hop
        ("unknown, 198.51.100.23", "198.51.100.23"),
        ("1.2.3.4,,198.51.100.23", "198.51.100.23"),
        ("999.1.1.1", "10.0.0.5"),
        ("\x00\xff" * 100, "10.0.0.5"),
        ("1" * 10_000, "10.0.0.5"),
        ('"198.51.100.23"', "198.51.100.23"),
    ],
)
def test_garbage_forwarded_headers_are_handled_safely(xff, expected):
    assert client_ip(meta("10.0.0.5", xff), PROXIES) == expected


@pytest.mark.parametrize("remote", [None, "", "unix:", "localhost", "300.1.1.1"])
def test_no_usable_remote_addr_gives_none(remote):
    assert client_ip(meta(remote, "198.51.100.23"), PROXIES) is None


def test_accepts_a_request_and_reads_trusted_proxies_from_settings():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.23"
    )
    assert client_ip(request) == "10.0.0.5"  # default: no trusted proxy
    with override_settings(PAYDESK={"SECURITY": {"TRUSTED_PROXIES": ["10.0.0.0/8"]}}):
        assert client_ip(request) == "198.51.100.23"
        assert client_ip(request, trusted_proxies=()) == "10.0.0.5"  # explicit wins
    with pytest.raises(TypeError):
        client_ip(42)


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["not-a-network"], "10.0.0.0/8"])
def test_invalid_trusted_proxies_are_configuration_errors(bad):
    with pytest.raises(ConfigurationError):
        client_ip(meta("10.0.0.5"), bad)
    with (
        override_settings(PAYDESK={"SECURITY": {"TRUSTED_PROXIES": bad}}),
        pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"),
    ):
        client_ip(meta("10.0.0.5"))


def test_parse_ip():
    assert parse_ip("1.2.3.4") == ipaddress.ip_address("1.2.3.4")
    assert parse_ip(" [::1]:80 ") == ipaddress.ip_address("::1")
    assert parse_ip("[::1]") == ipaddress.ip_address("::1")
    assert str(parse_ip("fe80::1%eth0")) == "fe80::1%eth0"
    assert parse_ip(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.ip_address("1.2.3.4")
    assert parse_ip("1.2.3.4:8080") == ipaddress.ip_address("1.2.3.4")
    for bad in (None, 7, "", "1.2.3", "[::1", "[::1]x", "[::1]:x", "a:b", "1.2.3.4:x", "1.2.3.4:"):
        assert parse_ip(bad) is None


# --- IPAllowlist -----------------------------------------------------------------------------


def test_empty_allowlist_allows_everyone():
    allowlist = IPAllowlist([])
    assert not allowlist
    assert allowlist.allows("198.51.100.23")
    assert allowlist.allows(None)


def test_allowlist_ipv4_ipv6_and_networks():
    allowlist = IPAllowlist(["51.89.194.21", "10.0.0.0/8", "2001:db8::/32"])
    assert allowlist
    assert allowlist.allows("51.89.194.21")
    assert not allowlist.allows("51.89.194.22")
    assert allowlist.allows("10.255.0.1")
    assert allowlist.allows("2001:db8:1::1")
    assert not allowlist.allows("2001:db9::1")
    assert allowlist.allows("::ffff:10.1.2.3")  # IPv4-mapped
    assert allowlist.allows(ipaddress.ip_address("10.0.0.1"))
    for bad in (None, "", "garbage", "999.0.0.1"):
        assert not allowlist.allows(bad)
    assert "51.89.194.21/32" in repr(allowlist)


def test_allowlist_host_bits_mean_the_enclosing_network():
    assert IPAllowlist(["192.168.1.5/24"]).allows("192.168.1.200")


@pytest.mark.parametrize("bad", [["1.2.3.4/40"], ["example.com"], ["10.0.0.0/8", ""], "1.2.3.4"])
def test_invalid_allowlist_entries_fail_at_construction(bad):
    with pytest.raises(ConfigurationError):
        IPAllowlist(bad)


PROVIDERS = {
    "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}},
    "nowpayments": {
        "BACKEND": "paydesk.providers.nowpayments.NowPaymentsProvider",
        "OPTIONS": {"WEBHOOK_IP_ALLOWLIST": ["51.89.194.21", "51.75.77.69", "138.201.172.58"]},
    },
    "broken": {
        "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
        "OPTIONS": {"WEBHOOK_IP_ALLOWLIST": ["51.89.194.300"]},
    },
}


def test_allowlist_for_provider():
    with override_settings(PAYDESK={"PROVIDERS": PROVIDERS}):
        nowpayments = allowlist_for_provider("nowpayments")
        assert nowpayments.allows("51.75.77.69")
        assert not nowpayments.allows("203.0.113.1")
        assert allowlist_for_provider("sandbox").allows("203.0.113.1")  # unset: allow all
        with pytest.raises(ConfigurationError, match="broken"):
            allowlist_for_provider("broken")
        with pytest.raises(ConfigurationError, match="No provider 'stripe'"):
            allowlist_for_provider("stripe")


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("203.0.113.7:4431", "203.0.113.7"),
        ("not an address", None),
    ],
)
def test_a_remembered_peer_gives_the_same_answer_every_time(remote, expected):
    # client_ip remembers each REMOTE_ADDR it parsed; the second answer comes from there.
    first = client_ip({"REMOTE_ADDR": remote}, ())
    second = client_ip({"REMOTE_ADDR": remote}, ())
    assert first == second == expected
    # The memory is about the peer only: a trusted proxy's header still decides.
    forwarded = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": "198.51.100.9"}
    proxied = client_ip(forwarded, ["203.0.113.0/24", "2001:db8::/32"])
    assert proxied == ("198.51.100.9" if expected else None)
