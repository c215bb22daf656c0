#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*.

Run from anywhere: `python3 fuzz/seeds/make_seeds.py`. Seeds are small, hand-made inputs that
reach every branch worth fuzzing; libFuzzer's minimized corpus files sit beside them (named by
their SHA-1). Re-running rewrites the seed-* files only.
"""
import base64, hashlib, hmac, json, os, pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"

def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)

# ------------------------------------------------------------------------------------------
# flag_document: first byte 0 = sniff, 1 = YAML, 2 = JSON.
SNIFF, YAML, JSON = b"\x00", b"\x01", b"\x02"
example = (ROOT / "config" / "flags.yaml").read_bytes()
put("flag_document", "example-yaml", YAML + example)
put("flag_document", "example-sniffed", SNIFF + example)
small = {
    "new-checkout": {"description": "Redesigned checkout", "enabled": True, "rollout": 25,
                     "metadata": {"team": "payments", "ticket": 1432, "beta": False}},
    "beta": {"enabled": True, "users": ["alice", "bob"], "tenants": ["acme"], "envs": ["staging"],
             "rollout": 0},
    "limit": {"enabled": True, "rollout": 150, "value": {"on": 1000, "off": 0.5}},
    "ui": {"enabled": False, "value": {"on": {"theme": "dark", "cols": [1, 2]}, "off": {}}},
    "model": {"enabled": True, "rollout": -5, "value": {"on": "v3", "off": "v2"}},
}
put("flag_document", "small-json", JSON + json.dumps(small, indent=1).encode())
put("flag_document", "small-json-sniffed", SNIFF + json.dumps(small).encode())
put("flag_document", "empty-map-json", JSON + b"{}")
put("flag_document", "empty-map-yaml", YAML + b"{}\n")
put("flag_document", "flow-yaml-sniffed", SNIFF + b"{a: {enabled: true, rollout: 50}, b: {value: {on: x, off: y}}}\n")
put("flag_document", "bom-yaml", YAML + "\ufeff# c\n---\nf:\n  enabled: yes\n  rollout: 0x10\n".encode())
put("flag_document", "anchors-yaml", YAML + b"""base: &base
  enabled: true
  rollout: 10
  metadata: {team: core}
a:
  <<: *base
  users: [u1]
b: *base
c:
  enabled: true
  value: {on: &v [1, 2, 3], off: *v}
""")
put("flag_document", "errors-yaml", YAML + b"""bad-type:
  value: {on: 1, off: "one"}
bad-meta:
  metadata: {nested: {a: 1}}
unknown-field:
  enabld: true
"": {}
notmap: 3
dup: {}
dup: {}
""")
put("flag_document", "errors-json", JSON + b'{"a": {"rollout": "x"}, "b": [], "a": {}, "c": {"value": {"on": true}}}')
put("flag_document", "multi-doc-yaml", YAML + b"a: {}\n---\nb: {}\n")
put("flag_document", "strings-yaml", YAML + b"'quoted \"key\"':\n  description: |\n    multi\n    line\n  value:\n    on: !!str 123\n    off: \"\\u00e9\\t\"\n")
# An alias bomb, small enough to stay under the budget (10^4 scalars): the fuzzer grows it.
# The full billion laughs (10^9) is in tests/fuzz_regressions.rs: as a seed, each of its runs
# would take seconds of budget before failing, which starves the rest of the corpus.
bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
for prev, this in zip("abc", "bcd"):
    bomb.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 10) + "]")
bomb.append("flag:\n  enabled: true\n  value: {on: *d, off: []}")
put("flag_document", "alias-bomb-yaml", YAML + ("\n".join(bomb) + "\n").encode())
put("flag_document", "deep-json-200", JSON + b'{"f": {"value": {"on": ' + b"[" * 200 + b"]" * 200 + b', "off": []}}}')
put("flag_document", "deep-json-100", JSON + b'{"f": {"value": {"on": ' + b"[" * 100 + b"]" * 100 + b', "off": []}}}')
put("flag_document", "deep-yaml-flow-100", YAML + b"f: {value: {on: " + b"[" * 100 + b"]" * 100 + b", off: []}}\n")
put("flag_document", "deep-yaml-block", YAML + b"f:\n  value:\n    on:\n" + b"".join(b"  " * (i + 3) + b"- \n" for i in range(80)) + b"    off: []\n")
put("flag_document", "numbers-yaml", YAML + b"f:\n  rollout: 9223372036854775807\n  value: {on: 1e400, off: -.inf}\n  metadata: {n: .nan, big: 18446744073709551616}\n")

# ------------------------------------------------------------------------------------------
# config: UTF-8 text, tried as flagrelay.yaml and flagrelay.json.
full = {
    "server": {"host": "127.0.0.1", "port": 8080, "monitoringPort": 8081, "shutdownGracePeriod": "5s"},
    "logLevel": "debug", "logFormat": "text", "environment": "production", "rolloutSalt": "s",
    "pollingInterval": "30s", "enablePollingJitter": True, "startWithRetrieverError": False,
    "persistentFlagConfigurationFile": "/var/lib/flagrelay/snapshot.json",
    "retrievers": [
        {"kind": "file", "path": "config/flags.yaml", "format": "yaml"},
        {"kind": "http", "url": "https://example.com/flags.json", "method": "GET",
         "headers": {"Authorization": "Bearer x"}, "timeout": 2500, "maxBytes": 1048576,
         "caCertPath": "/ca.pem", "clientCertPath": "/c.pem", "clientKeyPath": "/k.pem"},
        {"kind": "s3", "bucket": "b", "item": "flags.yaml", "region": "eu-west-1",
         "endpoint": "http://localhost:9000", "forcePathStyle": True},
    ],
    "authorizedKeys": {"evaluation": ["k1", {"key": "k2", "env": "staging"},
                                      {"key": "sha256:" + hashlib.sha256(b"k3").hexdigest()}],
                       "admin": ["adm"]},
    "auth": {"jwtSecret": "0123456789abcdef0123456789abcdef", "tokenTtl": 600},
    "cors": {"allowedOrigins": ["https://app.example.com"]},
    "maxRequestBodyBytes": 65536, "fips": {"strict": False},
}
put("config", "full-json", json.dumps(full, indent=2))
put("config", "full-yaml", """server:
  host: 0.0.0.0
  port: 1031
  shutdownGracePeriod: 10000
logLevel: info
pollingInterval: 1.5s
retrievers:
  - kind: file
    path: config/flags.yaml
  - kind: http
    url: http://flags.internal/flags.yaml
    timeout: 500ms
authorizedKeys:
  evaluation:
    - plain-key
    - {key: bound-key, env: staging}
  admin: [admin-key]
auth:
  jwtSecret: 0123456789abcdef0123456789abcdef
  tokenTtl: 3600
""")
put("config", "empty", "")
put("config", "empty-map", "{}")
put("config", "errors", "server:\n  port: 70000\nretrievers:\n  - kind: http\n    clientCertPath: /c\n")
put("config", "bad-keys", '{"authorizedKeys": {"admin": ["sha256:xyz"], "evaluation": [""]}, "auth": {"jwtSecret": "short"}}')
put("config", "durations", "pollingInterval: -1\nserver: {shutdownGracePeriod: 1e30}\nretrievers: [{kind: file, path: f, timeout: \"9999999999999h\"}]\n")
put("config", "anchors", "r: &r {kind: file, path: a.yaml}\nretrievers: [*r, *r]\n")

# ------------------------------------------------------------------------------------------
# ofrep_request: request bodies.
for name, body in {
    "empty": "", "empty-object": "{}", "null": "null",
    "full": json.dumps({"context": {"targetingKey": "user-1", "userId": "u", "tenantId": "acme",
                                    "tenant": "t", "env": "staging", "environment": "e",
                                    "email": "a@b.c", "age": 3, "nested": {"a": [1, {"b": None}]}},
                        "other": [1, 2]}),
    "escapes": '{"context": {"targetingKey": "\\u00e9\\ud83d\\ude00\\n", "env": "a\\"b"}}',
    "nulls": '{"context": {"targetingKey": null, "userId": "", "tenant": null}}',
    "bad-attr": '{"context": {"targetingKey": 5, "env": {"a": 1}, "tenantId": [true]}}',
    "bad-context": '{"context": "x"}',
    "array-context": '{"context": [1, 2]}',
    "dup-keys": '{"context": {"env": "a"}, "context": {"env": "b", "env": null}}',
    "trailing": '{"context": {}} x',
    "top-array": "[]",
    "deep-200": '{"context": {"x": ' + "[" * 200 + "]" * 200 + "}}",
    "deep-100": '{"context": {"x": ' + "[" * 100 + "]" * 100 + "}}",
    "numbers": '{"context": {"n": 1e400, "m": -0, "k": 123456789012345678901234567890}}',
}.items():
    put("ofrep_request", name, body)

# ------------------------------------------------------------------------------------------
# bearer_token: first byte is the mode (see fuzz_targets/bearer_token.rs).
SECRET = b"fuzz-jwt-secret-0123456789abcdef-0123456789"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
kid = lambda k: hashlib.sha256(k).hexdigest()[:12]

def jwt(header, claims, secret=SECRET):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    s = b64(hmac.new(secret, h + b"." + p, hashlib.sha256).digest())
    return h + b"." + p + b"." + s

HS = {"alg": "HS256", "typ": "JWT"}
far = 4102444800  # 2100-01-01
valid_staging = jwt(HS, {"kid": kid(b"eval-staging"), "env": "staging", "iat": 1, "exp": far})
valid_plain = jwt(HS, {"kid": kid(b"eval-plain"), "iat": 1, "exp": far})
put("bearer_token", "xapikey-eval", b"\x00eval-plain")
put("bearer_token", "xapikey-admin", b"\x00 admin-two ")
put("bearer_token", "xapikey-unknown", b"\x00nope")
put("bearer_token", "authorization-raw", b"\x01bEaReR   eval-prod  ")
put("bearer_token", "authorization-basic", b"\x01Basic ZXZhbC1wbGFpbg==")
put("bearer_token", "bearer-eval", b"\x02eval-staging")
put("bearer_token", "bearer-jwt-staging", b"\x02" + valid_staging)
put("bearer_token", "bearer-jwt-plain", b"\x02" + valid_plain)
put("bearer_token", "bearer-jwt-wrong-env", b"\x02" + jwt(HS, {"kid": kid(b"eval-staging"), "env": "production", "exp": far}))
put("bearer_token", "bearer-jwt-expired", b"\x02" + jwt(HS, {"kid": kid(b"eval-plain"), "exp": 1}))
put("bearer_token", "bearer-jwt-none", b"\x02" + b64(b'{"alg":"none"}') + b"." + b64(json.dumps({"kid": kid(b"eval-plain"), "exp": far}).encode()) + b".")
put("bearer_token", "bearer-jwt-other-secret", b"\x02" + jwt(HS, {"kid": kid(b"eval-plain"), "exp": far}, b"another-secret-another-secret-0123"))
put("bearer_token", "query-eval", b"\x03eval-plain")
put("bearer_token", "query-jwt", b"\x03" + valid_plain)
put("bearer_token", "mutate-none", b"\x04\x01")
put("bearer_token", "mutate-sig", b"\x04\x00\xffA")
put("bearer_token", "mutate-truncate", b"\x04\x02\x30")
for name, (h, c) in {
    "valid": (HS, {"kid": kid(b"eval-plain"), "iat": 1, "exp": far}),
    "bound": (HS, {"kid": kid(b"eval-prod"), "env": "production", "exp": far}),
    "float-exp": (HS, {"kid": kid(b"eval-plain"), "exp": 4102444800.5}),
    "string-exp": (HS, {"kid": kid(b"eval-plain"), "exp": "4102444800"}),
    "no-exp": (HS, {"kid": kid(b"eval-plain")}),
    "aud": (HS, {"kid": kid(b"eval-plain"), "exp": far, "aud": "x", "nbf": far}),
    "alg-hs512": ({"alg": "HS512"}, {"kid": kid(b"eval-plain"), "exp": far}),
    "alg-none": ({"alg": "none"}, {"kid": kid(b"eval-plain"), "exp": far}),
    "kid-admin": (HS, {"kid": kid(b"admin-key"), "exp": far}),
    "env-null": (HS, {"kid": kid(b"eval-plain"), "env": None, "exp": far}),
}.items():
    put("bearer_token", f"signed-{name}",
        b"\x05" + json.dumps(h).encode() + b"\x00" + json.dumps(c).encode())
put("bearer_token", "issue-eval", b"\x06eval-prod")
put("bearer_token", "issue-admin", b"\x06admin-key")
put("bearer_token", "issue-sha256", b"\x06sha256:b92cfd465287b9f3757b3148753f62b47552c38b7cd9c32b3e5b5551d7b04e3e")
put("bearer_token", "both-headers", b"\x07\x00Bearer admin-key")
put("bearer_token", "both-headers-2", b"\x07eval-plain\x00Bearer admin-key")
