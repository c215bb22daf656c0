#!/usr/bin/env bash
# The FIPS build needs cmake, Go >= 1.18 and Perl (Perl is on every machine): apt.sh has them.
set -euo pipefail
exec bash "$(dirname "$0")/apt.sh"
