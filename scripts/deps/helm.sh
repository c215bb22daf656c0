#!/usr/bin/env bash
# Python packages for `make helm-lint` (scripts/helm_lint.py): Helm's Go SDK as a library
# (there is no helm CLI to install here) and the Kubernetes JSON schemas with a validator.
# Pinned, so a new release cannot change what CI checks; skipped when already installed.
set -euo pipefail
pins=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0)
if python3 - "${pins[@]}" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
then
  exit 0
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pins[@]}"
