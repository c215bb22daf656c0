# syntax=docker/dockerfile:1
# flagrelay image, standard build (AWS-LC through aws-lc-rs). `make docker` builds it;
# Dockerfile.fips is the FIPS 140-3 variant. docs/deploy.md lists the paths and the volume.
# scripts/check-dockerfiles.sh (`make docker-lint`) lints this file and checks its invariants.

# ---- build: the official Rust image on Debian 12, the same Debian as the runtime image, so
# every glibc symbol the binary links exists at run time.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Exactly the cargo command `make build` runs. The cache mounts keep downloaded crates and the
# target dir between builds; they are not part of the layer, so the binary is copied out in the
# same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/flagrelay /out/bin/flagrelay
# The default config. The relay's built-in default reads config/flags.yaml relative to the
# working directory; in the image both files live under /etc/flagrelay (read-only), and the last
# good flag set is saved on the one writable path, /var/lib/flagrelay.
RUN install -d -m 0755 /out/etc/flagrelay /out/state/flagrelay \
    && install -m 0644 config/flags.yaml /out/etc/flagrelay/flags.yaml \
    && printf '%s\n' \
       '# flagrelay container config (docs/deploy.md). Mount another file over it, or override' \
       '# any key with a FLAGRELAY_* environment variable.' \
       'server:' \
       '  port: 1031' \
       'retrievers:' \
       '  - kind: file' \
       '    path: /etc/flagrelay/flags.yaml' \
       'persistentFlagConfigurationFile: /var/lib/flagrelay/flags.json' \
       > /out/etc/flagrelay/flagrelay.yaml

# ---- runtime: distroless "cc" has glibc, libgcc and CA certificates, and no shell or package
# manager. Nothing in it is writable by the relay's user except /var/lib/flagrelay, so it runs
# with a read-only root filesystem.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="flagrelay" \
      org.opencontainers.image.description="Feature-flag relay proxy (OFREP, sync API, SSE)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/bin/flagrelay /usr/local/bin/flagrelay
COPY --from=build /out/etc/flagrelay/ /etc/flagrelay/
# Copies the flagrelay/ directory itself, so it is created owned by the relay's user.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/
# Numeric, so Kubernetes can enforce runAsNonRoot without looking the name up.
USER 65532:65532
# The persisted flag set (persistentFlagConfigurationFile). With `docker run --read-only` an
# anonymous volume keeps it writable; Kubernetes mounts an emptyDir here (helm/flagrelay).
VOLUME ["/var/lib/flagrelay"]
EXPOSE 1031
# No HEALTHCHECK: probes belong to the orchestrator (GET /health, GET /ready).
ENTRYPOINT ["/usr/local/bin/flagrelay"]
CMD ["--config", "/etc/flagrelay/flagrelay.yaml"]
