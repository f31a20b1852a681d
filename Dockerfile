# The Fjord broker image (`fjord`).
#
# Users build from source on public bases:
#   docker build -t fjord:0.1.0 .
# Builds that cannot pull a Rust image (this repository's tests, see e2e/images.sh) build
# the binary on the host and take the `prebuilt` target, which puts it on the same
# runtime layer:
#   cargo build --release --locked -p fjord-broker --bin fjord
#   docker build --target prebuilt --build-arg RUNTIME_IMAGE=fjord-base:bookworm -t fjord:0.1.0 .
#
# The runtime base needs only what `ldd fjord` lists (glibc: libc, libm; libgcc_s) and CA
# certificates. It has no shell: the entrypoint is exec form and nothing RUNs in it.
#
# Stage order matters: the legacy builder (docker.io 20.10 without BuildKit) builds every
# stage up to --target, so `prebuilt` comes before `builder` and never pulls BUILDER_IMAGE.

ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

# ---- runtime: the layer every variant shares --------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="fjord" \
      org.opencontainers.image.description="Fjord: a Kafka-compatible streaming broker" \
      org.opencontainers.image.source="https://github.com/fjord-dev/fjord" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# /data must belong to the broker's user before VOLUME: a new named volume takes the
# ownership of the image's directory, and the broker (non-root) writes its logs there.
# (docker/data holds only a placeholder; a directory cannot be created without a shell.)
COPY --chown=10001:10001 docker/data/ /data/
# NO_COLOR: container logs go to a log collector, not a terminal; tracing-subscriber
# leaves out ANSI colours when it is set.
ENV FJORD_DATA_DIR=/data \
    FJORD_KAFKA_LISTEN=0.0.0.0:9092 \
    FJORD_INTERNAL_LISTEN=0.0.0.0:9093 \
    FJORD_HTTP_LISTEN=0.0.0.0:9644 \
    NO_COLOR=1
# 9092 Kafka clients; 9093 broker-to-broker (replicated cluster); 9644 HTTP (health, metrics).
EXPOSE 9092 9093 9644
VOLUME /data
# The operator's broker pods run as this uid and gid too (runAsUser, runAsGroup and
# fsGroup 10001 in operator/src/desired.rs), on a read-only root file system: the broker
# writes only to its data directory (a volume) and, if ever, /tmp (an emptyDir there).
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/fjord"]

# ---- prebuilt: a binary built on the host, from the build context -----------------------
# PREBUILT is a path inside the build context (.dockerignore lets target/release/fjord
# and target/docker/ through).
FROM runtime AS prebuilt
ARG PREBUILT=target/release/fjord
COPY ${PREBUILT} /usr/local/bin/fjord

# ---- builder: cargo in the public Rust image --------------------------------------------
# The release profile keeps line tables for backtraces on the host (48 MB); the image
# drops the debug sections and keeps the symbols, so panics still name their functions
# (7 MB). e2e/images.sh does the same to the host-built binary.
FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fjord-broker --bin fjord \
 && mkdir -p /out \
 && objcopy --strip-debug target/release/fjord /out/fjord

# ---- the default target: built from source ----------------------------------------------
FROM runtime AS broker
COPY --from=builder /out/fjord /usr/local/bin/fjord
