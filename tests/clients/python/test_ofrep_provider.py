"""openfeature-sdk + openfeature-provider-ofrep, unchanged, against a real relay whose
evaluation needs an API key; the key travels through the provider's headers_factory."""

import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from relay import KEYS, bucket, expected_variant, fnv1a32

CTX = EvaluationContext(targeting_key="user-1")


def make_client(relay, domain, headers=None):
    factory = (lambda: dict(headers)) if headers is not None else None
    api.set_provider_and_wait(OFREPProvider(relay.base_url, headers_factory=factory), domain=domain)
    return api.get_client(domain)


@pytest.fixture(scope="module")
def client(relay):
    c = make_client(relay, "py-keyed", {"X-API-Key": KEYS["eval"]})
    yield c
    api.shutdown()


def ok(d):
    assert d.error_code is None, f"{d.error_code}: {d.error_message}"
    return d


def test_boolean(client):
    d = ok(client.get_boolean_details("bool-flag", False, CTX))
    assert (d.value, d.variant, d.reason) == (True, "on", Reason.STATIC)
    assert d.flag_metadata["team"] == "qa"
    assert d.flag_metadata["tier"] == 3
    assert d.flag_metadata["beta"] is True
    assert d.flag_metadata["description"] == "Boolean flag, on for everyone"


def test_string(client):
    d = ok(client.get_string_details("string-flag", "default", CTX))
    assert (d.value, d.variant) == ("transformer-v3", "on")


def test_integer(client):
    d = ok(client.get_integer_details("int-flag", 0, CTX))
    assert d.value == 1000 and type(d.value) is int


def test_float(client):
    d = ok(client.get_float_details("float-flag", 0.0, CTX))
    assert d.value == 0.75
    # 2.0 must arrive as a JSON float (2.0), or this strict client reports TYPE_MISMATCH.
    whole = ok(client.get_float_details("float-whole-flag", 0.0, CTX))
    assert whole.value == 2.0 and type(whole.value) is float


def test_object(client):
    d = ok(client.get_object_details("object-flag", {}, CTX))
    assert d.value == {"theme": "compact", "density": 2, "sidebar": False, "tags": ["a", "b"]}
    assert d.variant == "on"


def test_type_mismatch(client):
    d = client.get_integer_details("string-flag", 7, CTX)
    assert d.value == 7
    assert d.error_code == ErrorCode.TYPE_MISMATCH


def test_missing_flag(client):
    d = client.get_boolean_details("no-such-flag", True, CTX)
    assert d.value is True
    assert d.error_code == ErrorCode.FLAG_NOT_FOUND
    assert d.reason == Reason.ERROR


def test_disabled_flag(client):
    d = ok(client.get_string_details("disabled-flag", "default", CTX))
    assert (d.value, d.variant, d.reason) == ("no-banner", "off", Reason.DISABLED)


def test_allow_lists(client):
    alice = ok(client.get_boolean_details("allow-list-flag", False, EvaluationContext("alice")))
    assert (alice.value, alice.reason) == (True, Reason.TARGETING_MATCH)
    acme = ok(client.get_boolean_details("allow-list-flag", False, EvaluationContext("zed", {"tenantId": "acme"})))
    assert (acme.value, acme.reason) == (True, Reason.TARGETING_MATCH)
    bob = ok(client.get_boolean_details("allow-list-flag", True, EvaluationContext("bob")))
    assert (bob.value, bob.variant, bob.reason) == (False, "off", Reason.DEFAULT)


def test_fnv1a_reference_vectors():
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


@pytest.mark.parametrize(
    "flag,rollout,on,off",
    [("split-flag", 50, True, False), ("split-string-flag", 30, "variant-b", "variant-a")],
)
def test_split_rollout(client, flag, rollout, on, off):
    seen = set()
    for user in [f"user-{i}" for i in range(8)]:
        want = expected_variant(flag, user, rollout)
        seen.add(want)
        ctx = EvaluationContext(targeting_key=user)
        if isinstance(on, bool):
            d = ok(client.get_boolean_details(flag, not on, ctx))
        else:
            d = ok(client.get_string_details(flag, "default", ctx))
        assert d.variant == want, f"{flag} for {user}: bucket {bucket(flag, user)}, rollout {rollout}"
        assert d.value == (on if want == "on" else off)
        assert d.reason == Reason.SPLIT
    assert seen == {"on", "off"}, "the chosen keys should cover both variants"


def test_split_rollout_on_tenant_without_targeting_key(client):
    for tenant in ["tenant-only", "globex", "initech"]:
        d = ok(client.get_boolean_details("split-flag", False, EvaluationContext(None, {"tenantId": tenant})))
        assert d.variant == expected_variant("split-flag", tenant, 50), f"tenant {tenant}"


def test_bearer_token_header(relay, client):
    c = make_client(relay, "py-bearer", {"Authorization": f"Bearer {KEYS['eval']}"})
    d = ok(c.get_string_details("string-flag", "default", CTX))
    assert d.value == "transformer-v3"


def test_sha256_configured_key(relay, client):
    c = make_client(relay, "py-hashed", {"X-API-Key": KEYS["hashed"]})
    assert ok(c.get_boolean_details("bool-flag", False, CTX)).value is True


def test_wrong_key_gives_default_and_error(relay, client):
    raw = requests.post(
        f"{relay.base_url}/ofrep/v1/evaluate/flags/bool-flag",
        json={"context": {"targetingKey": "user-1"}},
        headers={"X-API-Key": KEYS["wrong"]},
        timeout=5,
    )
    assert raw.status_code == 401
    assert KEYS["wrong"] not in raw.text

    c = make_client(relay, "py-wrong", {"X-API-Key": KEYS["wrong"]})
    d = c.get_boolean_details("bool-flag", False, CTX)
    assert d.value is False
    assert d.reason == Reason.ERROR
    assert d.error_code == ErrorCode.GENERAL
    # The provider maps exactly 401 to "unauthorized" (403 would be "forbidden").
    assert d.error_message == "unauthorized"


def test_no_key_gives_default_and_error(relay, client):
    c = make_client(relay, "py-nokey")
    d = c.get_string_details("string-flag", "default", CTX)
    assert d.value == "default"
    assert d.error_message == "unauthorized"


def test_bound_key_fixes_environment(relay, client):
    staging = make_client(relay, "py-staging", {"X-API-Key": KEYS["staging"]})
    for attrs in [{}, {"env": "production"}, {"environment": "production"}, {"env": "staging"}]:
        d = ok(staging.get_string_details("staging-only-flag", "default", EvaluationContext("user-1", attrs)))
        assert d.value == "staging-feature", f"bound key with context {attrs}"
    prod = ok(client.get_string_details("staging-only-flag", "default", EvaluationContext("user-1", {"env": "production"})))
    assert (prod.value, prod.variant) == ("hidden", "off")
    stg = ok(client.get_string_details("staging-only-flag", "default", EvaluationContext("user-1", {"env": "staging"})))
    assert stg.value == "staging-feature"
