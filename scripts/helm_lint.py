#!/usr/bin/env python3
"""Lint, render and validate the Helm chart in helm/flagrelay (`make helm-lint`).

No helm CLI can be installed here, so this drives Helm's own Go SDK through helm-python-sdk:
`helm lint --strict` and `helm template`, with the default values and with ci/full-values.yaml.
Every rendered manifest is validated against the Kubernetes 1.33 schemas that
kubernetes-validate ships (strict: unknown fields are errors). Then the properties the chart
promises are asserted on the rendered objects: selectors that really match the pods, the secure
defaults, probes, the checksum annotation, the writable snapshot volume, secrets as env vars,
and the -fips image tag. scripts/helm-lint.sh installs the two packages first.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Callable

import helm_python
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "flagrelay"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "ci", "flagrelay-ci"

# Custom resources whose schema kubernetes-validate does not ship: these are reported as skipped
# rather than validated. Any other kind without a schema is a failure.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

Manifest = dict[str, Any]


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}{': ' + detail if detail else ''}", file=sys.stderr)
        return ok

    def run(self, name: str, body: Callable[[], tuple[bool, str] | bool]) -> bool:
        """A check whose body may raise: an exception is a failure naming the error."""
        try:
            result = body()
        except Exception as e:  # noqa: BLE001 - any error is this check's failure
            return self.check(name, False, f"{type(e).__name__}: {e}")
        ok, detail = result if isinstance(result, tuple) else (result, "")
        return self.check(name, ok, detail)


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None) -> list[Manifest]:
    """`helm template`: every object the chart renders, NOTES.txt left out."""
    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    docs: list[Manifest] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def lint(report: Report, label: str, values: dict[str, Any] | None) -> None:
    result = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    for m in result.get("messages", []):
        print(f"     helm lint ({label}) [{m['severity']}] {m['path']}: {m['error'].strip()}")
    # Severity 1 is informational ("icon is recommended"); strict makes warnings (2) errors (3).
    problems = [m for m in result.get("messages", []) if m["severity"] >= 2]
    report.check(
        f"helm lint --strict ({label})",
        not problems and not result.get("errors"),
        "; ".join(m["error"].strip() for m in problems) or "; ".join(result.get("errors", [])),
    )


def validate_schemas(report: Report, label: str, docs: list[Manifest]) -> None:
    for doc in docs:
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
            print(f"SKIP schema {label} {what}: custom resource {doc['apiVersion']}, "
                  f"kubernetes-validate has no schema for it")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            report.check(f"schema k8s {KUBE_VERSION} strict ({label}): {what}", True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            report.check(f"schema k8s {KUBE_VERSION} strict ({label}): {what}", False,
                         f"{path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            report.check(f"schema k8s {KUBE_VERSION} strict ({label}): {what}", False, e.message)


def only(docs: list[Manifest], kind: str) -> Manifest:
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, rendered {len(found)}")
    return found[0]


def has(docs: list[Manifest], kind: str) -> bool:
    return any(d.get("kind") == kind for d in docs)


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> tuple[bool, str]:
    """A non-empty matchLabels selector that the given labels satisfy."""
    if not selector:
        return False, "empty selector would select every pod"
    missing = {k: v for k, v in selector.items() if labels.get(k) != v}
    return not missing, f"selector {selector} does not match labels {labels} (differs: {missing})"


def container(deploy: Manifest) -> Manifest:
    return deploy["spec"]["template"]["spec"]["containers"][0]


def image_tag(docs: list[Manifest]) -> str:
    return container(only(docs, "Deployment"))["image"].rsplit(":", 1)[1]


def env_refs(deploy: Manifest) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container(deploy).get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def checksum(docs: list[Manifest]) -> str:
    return only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def secure_context(deploy: Manifest) -> tuple[bool, str]:
    pod = deploy["spec"]["template"]["spec"].get("securityContext", {})
    ctr = container(deploy).get("securityContext", {})
    problems = []
    for where, ctx in (("pod", pod), ("container", ctr)):
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"{where} runAsNonRoot is not true")
        uid = ctx.get("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            problems.append(f"{where} runAsUser {uid!r} is not a non-zero number")
        if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where} seccompProfile is not RuntimeDefault")
    if ctr.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if ctr.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in ctr.get("capabilities", {}).get("drop", []):
        problems.append("capabilities do not drop ALL")
    if ctr.get("privileged"):
        problems.append("privileged")
    return not problems, "; ".join(problems)


def common_checks(report: Report, label: str, docs: list[Manifest], values: dict[str, Any]) -> None:
    """What must hold for any values: wiring between the objects and the secure defaults."""
    deploy = only(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    pod_spec = deploy["spec"]["template"]["spec"]
    ctr = container(deploy)
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}

    report.run(f"Deployment selector matches its pod labels ({label})",
               lambda: selects(deploy["spec"]["selector"].get("matchLabels"), pod_labels))
    report.run(f"Service selector matches the pod labels ({label})",
               lambda: selects(only(docs, "Service")["spec"]["selector"], pod_labels))
    report.run(f"PodDisruptionBudget selector matches the pod labels ({label})",
               lambda: selects(only(docs, "PodDisruptionBudget")["spec"]["selector"]
                               .get("matchLabels"), pod_labels))
    report.run(f"secure security contexts ({label})", lambda: secure_context(deploy))

    def probes() -> tuple[bool, str]:
        live, ready = ctr["livenessProbe"]["httpGet"], ctr["readinessProbe"]["httpGet"]
        want = "monitoring" if "monitoring" in ports else "http"
        ok = (live["path"] == "/health" and ready["path"] == "/ready"
              and live["port"] == want and ready["port"] == want)
        return ok, f"liveness {live}, readiness {ready}, expected port {want}"

    report.run(f"liveness /health and readiness /ready on the monitoring or http port ({label})",
               probes)

    def checksum_annotation() -> tuple[bool, str]:
        value = deploy["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config")
        ok = isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
        return ok, f"checksum/config is {value!r}"

    report.run(f"checksum/config annotation on the pod template ({label})", checksum_annotation)

    def config_mount() -> tuple[bool, str]:
        cm = only(docs, "ConfigMap")
        rendered = yaml.safe_load(cm["data"]["flagrelay.yaml"])
        mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        config_vol = volumes.get(mounts.get("/etc/flagrelay", ""), {})
        # The chart adds server.shutdownDelay from shutdownDelaySeconds unless the config sets it.
        expected = copy.deepcopy(values.get("config", rendered))
        delay = values.get("shutdownDelaySeconds", 5)
        expected.setdefault("server", {}).setdefault("shutdownDelay", f"{delay}s")
        grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        ok = (ctr["args"] == ["--config", "/etc/flagrelay/flagrelay.yaml"]
              and config_vol.get("configMap", {}).get("name") == cm["metadata"]["name"]
              # The config value (with shutdownDelay), plus the `fleet` section the chart
              # derives from fleet.*.
              and {k: v for k, v in rendered.items() if k != "fleet"} == expected
              and grace > delay
              and rendered["server"]["port"] == ports["http"]
              and rendered["server"].get("monitoringPort") == ports.get("monitoring"))
        return ok, f"args {ctr['args']}, mounts {mounts}, config {rendered}, ports {ports}"

    report.run(f"ConfigMap flagrelay.yaml is the config value, mounted and passed with --config, "
               f"ports agree ({label})", config_mount)

    def snapshot_volume() -> tuple[bool, str]:
        mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
        mount = mounts.get("/var/lib/flagrelay")
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        persisted = yaml.safe_load(only(docs, "ConfigMap")["data"]["flagrelay.yaml"]).get(
            "persistentFlagConfigurationFile", "")
        ok = (mount is not None and not mount.get("readOnly")
              and "emptyDir" in volumes.get(mount["name"], {})
              and str(persisted).startswith("/var/lib/flagrelay/"))
        return ok, f"mount {mount}, persistentFlagConfigurationFile {persisted!r}"

    report.run(f"emptyDir at /var/lib/flagrelay holds persistentFlagConfigurationFile ({label})",
               snapshot_volume)

    def service_ports() -> tuple[bool, str]:
        svc = {p["name"]: p for p in only(docs, "Service")["spec"]["ports"]}
        ok = (svc.get("http", {}).get("port") == 1031 and svc["http"]["targetPort"] == "http"
              and set(svc) == set(ports)
              and all(p["targetPort"] in ports for p in svc.values()))
        return ok, f"service ports {svc}, container ports {ports}"

    report.run(f"Service port 1031 named http, plus monitoring when configured ({label})",
               service_ports)

    def service_account() -> tuple[bool, str]:
        sa = only(docs, "ServiceAccount")
        ok = pod_spec["serviceAccountName"] == sa["metadata"]["name"]
        return ok, f"pod uses {pod_spec['serviceAccountName']}, chart creates {sa['metadata']['name']}"

    report.run(f"pods run as the chart's ServiceAccount ({label})", service_account)


def full_checks(report: Report, docs: list[Manifest], values: dict[str, Any]) -> None:
    """What ci/full-values.yaml turns on is there and wired up."""
    label = "full values"
    deploy = only(docs, "Deployment")
    svc = only(docs, "Service")
    name = deploy["metadata"]["name"]

    def secret_env() -> tuple[bool, str]:
        secret = only(docs, "Secret")
        refs = env_refs(deploy)
        want = {"FLAGRELAY_AUTHORIZEDKEYS_ADMIN", "FLAGRELAY_AUTHORIZEDKEYS_EVALUATION",
                "FLAGRELAY_AUTH_JWTSECRET"}
        ok = (set(refs) >= want
              and all(refs[v]["name"] == secret["metadata"]["name"]
                      and refs[v]["key"] in secret["data"] for v in want))
        return ok, f"env secretKeyRefs {refs}, secret keys {sorted(secret['data'])}"

    report.run(f"admin keys, evaluation keys and JWT secret come from the Secret as "
               f"FLAGRELAY_ variables ({label})", secret_env)

    def no_secret_in_configmap() -> tuple[bool, str]:
        text = only(docs, "ConfigMap")["data"]["flagrelay.yaml"]
        leaked = [s for s in [values["auth"]["jwtSecret"], *values["auth"]["adminKeys"]] if s in text]
        return not leaked, f"ConfigMap contains {leaked}"

    report.run(f"credentials stay out of the ConfigMap ({label})", no_secret_in_configmap)

    def fleet() -> tuple[bool, str]:
        config = yaml.safe_load(only(docs, "ConfigMap")["data"]["flagrelay.yaml"])
        f = config.get("fleet", {})
        ref = env_refs(deploy).get("FLAGRELAY_FLEET_REDIS_PASSWORD", {})
        want = values["fleet"]
        ok = (f.get("name") == want["name"]
              and f["redis"].get("sentinel", {}).get("masterName") == want["redis"]["sentinel"]["masterName"]
              and f["redis"].get("url") == want["redis"]["url"]
              and "password" not in f["redis"] and "existingSecret" not in f["redis"]
              and ref == {"name": want["redis"]["existingSecret"], "key": want["redis"]["existingSecretKey"]})
        return ok, f"fleet config {f}, password ref {ref}"

    report.run(f"fleet settings reach the config file, the Redis password comes from its Secret "
               f"({label})", fleet)

    def irsa() -> tuple[bool, str]:
        sa = only(docs, "ServiceAccount")
        want = values["serviceAccount"]["annotations"]
        return sa["metadata"].get("annotations") == want, f"annotations {sa['metadata'].get('annotations')}"

    report.run(f"ServiceAccount carries the IRSA annotations ({label})", irsa)

    def hpa() -> tuple[bool, str]:
        h = only(docs, "HorizontalPodAutoscaler")
        ref = h["spec"]["scaleTargetRef"]
        ok = (h["apiVersion"] == "autoscaling/v2" and ref["kind"] == "Deployment"
              and ref["name"] == name and "replicas" not in deploy["spec"])
        return ok, f"{h['apiVersion']} targets {ref}; deployment replicas {deploy['spec'].get('replicas')}"

    report.run(f"HPA autoscaling/v2 scales the Deployment, which sets no replicas ({label})", hpa)

    def ingress() -> tuple[bool, str]:
        ing = only(docs, "Ingress")
        backends = [p["backend"]["service"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
        svc_ports = {p["name"] for p in svc["spec"]["ports"]}
        ok = bool(backends) and all(b["name"] == svc["metadata"]["name"]
                                    and b["port"]["name"] in svc_ports for b in backends)
        return ok, f"backends {backends}"

    report.run(f"Ingress routes to the Service's http port ({label})", ingress)

    def service_monitor() -> tuple[bool, str]:
        sm = only(docs, "ServiceMonitor")
        ok, detail = selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        endpoints = sm["spec"]["endpoints"]
        svc_ports = {p["name"] for p in svc["spec"]["ports"]}
        ok = ok and all(e["port"] == "monitoring" and e["path"] == "/metrics" for e in endpoints)
        ok = ok and all(e["port"] in svc_ports for e in endpoints)
        return ok, f"{detail}; endpoints {endpoints}, service ports {svc_ports}"

    report.run(f"ServiceMonitor selects the Service and scrapes /metrics on the monitoring "
               f"port ({label})", service_monitor)

    report.run(f"image.fips: true selects a -fips tag ({label})",
               lambda: (image_tag(docs).endswith("-fips"), f"tag {image_tag(docs)}"))

    def pod_labels_extra() -> tuple[bool, str]:
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        extra = values["podLabels"]
        selector = deploy["spec"]["selector"]["matchLabels"]
        # Extra pod labels go on the pods but never into the (immutable) selector.
        ok = all(labels.get(k) == v for k, v in extra.items()) and not set(extra) & set(selector)
        return ok, f"pod labels {labels}, selector {selector}"

    report.run(f"podLabels reach the pods but not the selector ({label})", pod_labels_extra)


def scenario_checks(report: Report, defaults: list[Manifest]) -> None:
    """Single settings on top of the defaults."""
    report.run("default image tag has no -fips suffix",
               lambda: (not image_tag(defaults).endswith("-fips"), f"tag {image_tag(defaults)}"))
    report.run("default values render no Secret and no credential variables",
               lambda: (not has(defaults, "Secret") and not env_refs(only(defaults, "Deployment")),
                        "a Secret or secretKeyRef was rendered"))

    fips = render({"image": {"fips": True}})
    report.run("image.fips: true appends -fips to the default tag",
               lambda: (image_tag(fips) == f"{image_tag(defaults)}-fips", f"tag {image_tag(fips)}"))
    tagged = render({"image": {"fips": True, "tag": "1.2.3"}})
    report.run("image.fips: true appends -fips to an explicit tag",
               lambda: (image_tag(tagged) == "1.2.3-fips", f"tag {image_tag(tagged)}"))

    def existing_secret() -> tuple[bool, str]:
        docs = render({"auth": {"existingSecret": "relay-credentials"}})
        refs = env_refs(only(docs, "Deployment"))
        ok = (not has(docs, "Secret") and len(refs) == 3
              and all(r["name"] == "relay-credentials" and r.get("optional") is True
                      for r in refs.values()))
        return ok, f"refs {refs}"

    report.run("auth.existingSecret: no Secret rendered, all three variables read from it",
               existing_secret)

    def conflicting_secret() -> tuple[bool, str]:
        try:
            render({"auth": {"existingSecret": "x", "jwtSecret": "y"}})
        except helm_python.HelmError as e:
            return "not both" in str(e), str(e)
        return False, "rendered without an error"

    report.run("auth.existingSecret together with chart-managed keys is an error",
               conflicting_secret)

    def checksum_tracks_config() -> tuple[bool, str]:
        changed = render({"config": {"logLevel": "debug"}})
        flags_only = render({"flags": {"f": {"enabled": True}}})
        ok = checksum(changed) != checksum(defaults) and checksum(flags_only) == checksum(defaults)
        return ok, "checksum/config must change with config and not with flags"

    report.run("checksum/config changes with the config (flags reload without a restart)",
               checksum_tracks_config)

    def monitoring_port_only() -> tuple[bool, str]:
        docs = render({"config": {"server": {"monitoringPort": 9102}}})
        svc = {p["name"]: p["port"] for p in only(docs, "Service")["spec"]["ports"]}
        live = container(only(docs, "Deployment"))["livenessProbe"]["httpGet"]["port"]
        return svc == {"http": 1031, "monitoring": 9102} and live == "monitoring", f"{svc}, {live}"

    report.run("config.server.monitoringPort adds the monitoring port and moves the probes",
               monitoring_port_only)

    def pdb_min_available() -> tuple[bool, str]:
        spec = only(render({"podDisruptionBudget": {"minAvailable": "50%"}}),
                    "PodDisruptionBudget")["spec"]
        return spec.get("minAvailable") == "50%" and "maxUnavailable" not in spec, str(spec)

    report.run("podDisruptionBudget.minAvailable replaces maxUnavailable", pdb_min_available)

    def fleet_needs_redis() -> tuple[bool, str]:
        try:
            render({"fleet": {"enabled": True}})
        except helm_python.HelmError as e:
            return "fleet.redis.url" in str(e), str(e)
        return False, "rendered without an error"

    report.run("fleet.enabled without a Redis URL or Sentinel is an error", fleet_needs_redis)

    def fleet_default_name() -> tuple[bool, str]:
        docs = render({"fleet": {"enabled": True, "redis": {"url": "redis://redis:6379/0"}}})
        config = yaml.safe_load(only(docs, "ConfigMap")["data"]["flagrelay.yaml"])
        name = only(docs, "Deployment")["metadata"]["name"]
        refs = env_refs(only(docs, "Deployment"))
        ok = config["fleet"]["name"] == name and "FLAGRELAY_FLEET_REDIS_PASSWORD" not in refs
        return ok, f"{config.get('fleet')}, refs {refs}"

    report.run("fleet.name defaults to the release name; no password variable without a Secret",
               fleet_default_name)
    report.run("default values render no fleet section",
               lambda: ("fleet" not in yaml.safe_load(only(defaults, "ConfigMap")["data"]["flagrelay.yaml"]),
                        "fleet rendered"))


def main() -> int:
    report = Report()
    full_values = load_values(FULL_VALUES)
    default_values = load_values(CHART / "values.yaml")
    rendered: dict[str, list[Manifest]] = {}

    for label, values in (("default values", None), ("full values", full_values)):
        lint(report, label, values)
        try:
            rendered[label] = render(values)
        except helm_python.HelmError as e:
            report.check(f"helm template ({label})", False, str(e))
            continue
        report.check(f"helm template ({label}): {len(rendered[label])} objects", True)
        validate_schemas(report, label, rendered[label])
        try:
            common_checks(report, label, rendered[label], values or default_values)
        except (AssertionError, KeyError) as e:
            report.check(f"chart wiring ({label})", False, f"{type(e).__name__}: {e}")

    if "full values" in rendered:
        try:
            full_checks(report, rendered["full values"], full_values)
        except (AssertionError, KeyError) as e:
            report.check("full values wiring", False, f"{type(e).__name__}: {e}")
    if "default values" in rendered:
        scenario_checks(report, rendered["default values"])

    print(f"helm-lint: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
