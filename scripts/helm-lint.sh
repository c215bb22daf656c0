#!/usr/bin/env bash
# `make helm-lint`: helm lint --strict, helm template and Kubernetes schema validation of the
# chart in helm/flagrelay, with default and full values, plus the chart's wiring checks
# (scripts/helm_lint.py). Installs what it needs on a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh helm >/dev/null
exec python3 scripts/helm_lint.py "$@"
