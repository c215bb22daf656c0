#!/usr/bin/env bash
# PostgreSQL server binaries for the sql retriever's tests (tests/support/postgres.rs starts a
# throwaway cluster with them; the packaged service is never used).
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq postgresql >/dev/null || { apt-get update -qq; apt-get install -y -qq postgresql >/dev/null; }
fi
