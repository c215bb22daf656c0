#!/usr/bin/env bash
# Azurite (npm) for the azblob retriever tests (tests/retriever_cloud.rs): Microsoft's Azure
# Storage emulator, which checks Shared Key signatures against its well-known dev account.
set -euo pipefail
version=3.37.0
if command -v azurite-blob >/dev/null 2>&1 && [ "$(azurite-blob --version 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
npm install -g --no-fund --no-audit --loglevel=error "azurite@$version" >/dev/null
