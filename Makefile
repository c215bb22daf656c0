# flagrelay developer entry points. `make test` is the test command README.md and .ci/run use.
CARGO ?= cargo
OUT   ?= out/bin

.PHONY: build build-relayproxy-fips run test test-rust test-clients test-readme test-schemathesis test-fips lint bench bench-load \
        soak docker docker-fips docker-lint helm-lint deps fuzz-smoke no-ring

build:
	$(CARGO) build --release --locked
	mkdir -p $(OUT) && cp target/release/flagrelay $(OUT)/flagrelay

# FIPS 140-3 build: needs cmake, Go >= 1.18 and Perl (scripts/install-deps.sh fips installs them).
build-relayproxy-fips:
	bash scripts/install-deps.sh fips
	$(CARGO) build --release --locked --features fips --target-dir target/fips
	mkdir -p $(OUT) && cp target/fips/release/flagrelay $(OUT)/relayproxy-fips

run:
	$(CARGO) run --release --locked

# Everything that must pass before a change lands.
test: test-rust test-clients docker-lint helm-lint no-ring

# Benches are not run here (clippy --all-targets compiles them; `make bench` runs them).
# First what the cargo tests start (quick when present): SeaweedFS (`weed`) for S3, Redis and
# Sentinel for fleet mode, PostgreSQL for the sql retriever, Azurite and fake-gcs-server.
RUST_TEST_DEPS = s3 redis postgres azure gcs
test-rust:
	bash scripts/install-deps.sh $(foreach c,$(RUST_TEST_DEPS),$(if $(wildcard scripts/deps/$(c).sh),$(c)))
	$(CARGO) test --locked

test-clients:
	bash scripts/test-clients.sh

# README's quick start as written: `cargo run --release`, /ready, the curl example's answer.
test-readme:
	bash scripts/readme-quickstart.sh

test-schemathesis:
	bash scripts/schemathesis.sh

test-fips:
	bash scripts/test-fips.sh

no-ring:
	bash scripts/check-no-ring.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench:
	$(CARGO) bench --locked

bench-load:
	bash scripts/install-deps.sh bench redis
	bash scripts/bench-load.sh

soak:
	bash scripts/install-deps.sh bench
	bash scripts/soak.sh

docker:
	docker build -f Dockerfile -t flagrelay:dev .

docker-fips:
	docker build -f Dockerfile.fips -t flagrelay:dev-fips .

docker-lint:
	bash scripts/check-dockerfiles.sh

helm-lint:
	bash scripts/helm-lint.sh

fuzz-smoke:
	bash scripts/fuzz-smoke.sh

deps:
	bash scripts/install-deps.sh all
