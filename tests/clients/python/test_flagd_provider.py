"""The unchanged flagd provider (openfeature-provider-flagd, RPC resolver: gRPC
flagd.evaluation.v2.Service) against the relay's flagd listener: every value type, errors,
credentials in gRPC metadata with the environment binding, the configuration-change event, and
the 2,000 shared vectors answered as OFREP answers them."""

import json
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import CacheType, ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from relay import KEYS, POLL_MS, REPO, Relay

CTX = EvaluationContext(targeting_key="user-1")
VECTORS = Path(REPO).parent / "shared/vectors/evaluation.json"


class _KeyAuth(grpc.AuthMetadataPlugin):
    def __init__(self, key: str):
        self.key = key

    def __call__(self, context, callback):
        callback((("x-api-key", self.key),), None)


def key_credentials(key: str) -> grpc.ChannelCredentials:
    """Call credentials carrying the API key, over plaintext loopback (what a user of the
    provider's `channel_credentials` argument writes)."""
    return grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.metadata_call_credentials(_KeyAuth(key)),
    )


def flagd_provider(relay: Relay, key: str | None, **kw) -> FlagdProvider:
    return FlagdProvider(
        host="127.0.0.1",
        port=relay.flagd_port,
        tls=False,
        resolver_type=ResolverType.RPC,
        channel_credentials=key_credentials(key) if key else None,
        deadline_ms=5000,
        **kw,
    )


def make_client(provider: FlagdProvider, domain: str):
    api.set_provider_and_wait(provider, domain=domain)
    return api.get_client(domain)


@pytest.fixture(scope="module")
def flagd_relay():
    r = Relay(secured=True, flagd="")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def client(flagd_relay):
    c = make_client(flagd_provider(flagd_relay, KEYS["eval"]), "py-flagd")
    yield c
    api.shutdown()


def ok(d):
    assert d.error_code is None, f"{d.error_code}: {d.error_message}"
    return d


def test_every_value_type(client):
    d = ok(client.get_boolean_details("bool-flag", False, CTX))
    assert (d.value, d.variant, d.reason) == (True, "on", Reason.STATIC)
    assert ok(client.get_string_details("string-flag", "x", CTX)).value == "transformer-v3"
    i = ok(client.get_integer_details("int-flag", 0, CTX))
    assert (i.value, type(i.value)) == (1000, int)
    f = ok(client.get_float_details("float-flag", 0.0, CTX))
    assert f.value == 0.75
    w = ok(client.get_float_details("float-whole-flag", 0.0, CTX))
    assert (w.value, type(w.value)) == (2.0, float)
    o = ok(client.get_object_details("object-flag", {}, CTX))
    assert o.value == {"theme": "compact", "density": 2, "sidebar": False, "tags": ["a", "b"]}
    d = ok(client.get_string_details("disabled-flag", "default", CTX))
    assert (d.value, d.variant, d.reason) == ("no-banner", "off", Reason.DISABLED)


def test_unknown_flag(client):
    d = client.get_boolean_details("no-such-flag", True, CTX)
    assert (d.value, d.reason, d.error_code) == (True, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)


def test_type_mismatch(client):
    d = client.get_boolean_details("string-flag", False, CTX)
    assert (d.value, d.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    d = client.get_integer_details("float-flag", 7, CTX)
    assert (d.value, d.error_code) == (7, ErrorCode.TYPE_MISMATCH)


def test_bound_key_fixes_environment(flagd_relay, client):
    staging = make_client(flagd_provider(flagd_relay, KEYS["staging"], cache=CacheType.DISABLED), "py-flagd-staging")
    for attrs in [{}, {"env": "production"}, {"environment": "production"}, {"env": "staging"}]:
        d = ok(staging.get_string_details("staging-only-flag", "default", EvaluationContext("user-1", attrs)))
        assert d.value == "staging-feature", f"bound key with context {attrs}"
    prod = ok(client.get_string_details("staging-only-flag", "default", EvaluationContext("user-1", {"env": "production"})))
    assert (prod.value, prod.variant) == ("hidden", "off")


def test_no_key_is_refused(flagd_relay):
    provider = flagd_provider(flagd_relay, None, cache=CacheType.DISABLED, retry_grace_period=1)
    api.set_provider(provider, domain="py-flagd-nokey")
    d = api.get_client("py-flagd-nokey").get_boolean_details("bool-flag", False, CTX)
    assert (d.value, d.reason) == (False, Reason.ERROR)
    assert flagd_relay.flagd_port is not None


def test_configuration_changed_event_and_cache(flagd_relay, client):
    seen = []
    got = threading.Event()

    def on_change(details):
        seen.append((time.monotonic(), list(details.flags_changed or [])))
        got.set()

    first = ok(client.get_string_details("live-flag", "default", CTX))
    assert (first.value, first.reason) == ("v1", Reason.STATIC)
    cached = ok(client.get_string_details("live-flag", "default", CTX))
    assert (cached.value, cached.reason) == ("v1", Reason.CACHED)
    # The client's own handler: a global one also hears the other flagd providers of this module
    # (the staging one follows the same relay), and one of their events can come before this
    # provider has dropped its cache entry.
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    try:
        written = time.monotonic()
        flagd_relay.set_live_value("v2")
        assert got.wait(10), "no PROVIDER_CONFIGURATION_CHANGED event"
        at, flags = seen[0]
        assert "live-flag" in flags
        took = at - written
        assert took <= POLL_MS / 1000 + 0.2, f"event after {took:.3f} s"
        after = ok(client.get_string_details("live-flag", "default", CTX))
        assert (after.value, after.reason) == ("v2", Reason.STATIC), "the cache was dropped"
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)


def _vector_flags(cases) -> str:
    flags = {}
    for c in cases:
        f = dict(c["flag"])
        key = f.pop("key")
        flags[key] = f
    return json.dumps(flags)  # JSON is YAML


def _check_group(salt: str, group: list, domain: str) -> int:
    """One relay with this salt and these cases' flags: each case through the flagd provider
    and through OFREP, both equal to the expected answer."""
    relay = Relay(secured=False, flagd="", salt=salt or None, flags_text=_vector_flags(group))
    provider = flagd_provider(relay, None, cache=CacheType.DISABLED)
    session = requests.Session()
    checked = 0
    try:
        client = make_client(provider, domain)
        for c in group:
            attrs = {}
            if c["tenant"]:
                attrs["tenantId"] = c["tenant"]
            if c["env"]:
                attrs["env"] = c["env"]
            ctx = EvaluationContext(c["user"] or None, attrs)
            key = c["flag"]["key"]
            d = ok(client.get_boolean_details(key, False, ctx))
            body = {"targetingKey": c["user"]} if c["user"] else {}
            body.update(attrs)
            o = session.post(
                f"{relay.base_url}/ofrep/v1/evaluate/flags/{quote(key, safe='')}", json={"context": body}, timeout=5
            ).json()
            want = c["expect"]
            assert (d.value, d.reason) == (want["on"], want["reason"]), f"{key}: {c}"
            assert (d.value, d.variant, d.reason) == (o.get("value"), o.get("variant"), o.get("reason")), f"{key}: {o}"
            checked += 1
    finally:
        provider.shutdown()
        relay.stop()
    return checked


def test_shared_vectors_same_as_ofrep():
    cases = json.loads(VECTORS.read_text())
    assert len(cases) == 2000
    by_salt = defaultdict(list)
    for c in cases:
        by_salt[c["salt"]].append(c)
    # One relay per salt (the salt is a relay setting): 526 of them, a few at a time.
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [
            pool.submit(_check_group, salt, group, f"py-vectors-{i}")
            for i, (salt, group) in enumerate(sorted(by_salt.items()))
        ]
        checked = sum(f.result() for f in futures)
    assert checked == 2000
