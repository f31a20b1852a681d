# The Fjord operator image (`fjord-operator`): the Kubernetes controller for FjordCluster
# and FjordTopic objects. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t fjord-operator:0.1.0 .
# or from host-built binaries on the same runtime layer (what e2e/images.sh does):
#   cargo build --release --locked -p fjord-operator --bin fjord-operator --bin fjord-check
#   docker build -f docker/operator.Dockerfile --target prebuilt \
#     --build-arg RUNTIME_IMAGE=fjord-base:bookworm -t fjord-operator:0.1.0 .
#
# The image also holds `fjord-check`, the client the chart's `helm test` pod runs.
#
# Same bases and same stage order as the broker's Dockerfile (see the notes there): the
# runtime has only the C runtime and CA certificates (the operator talks TLS to the API
# server), no shell, and runs as uid 10001. It keeps no state, so there is no volume.

ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="fjord-operator" \
      org.opencontainers.image.description="Fjord operator: runs Fjord clusters and topics on Kubernetes" \
      org.opencontainers.image.source="https://github.com/fjord-dev/fjord" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Logs without ANSI colours (see the broker's Dockerfile).
ENV NO_COLOR=1
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/fjord-operator"]

FROM runtime AS prebuilt
ARG PREBUILT=target/release/fjord-operator
ARG PREBUILT_CHECK=target/release/fjord-check
COPY ${PREBUILT} /usr/local/bin/fjord-operator
COPY ${PREBUILT_CHECK} /usr/local/bin/fjord-check

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fjord-operator --bin fjord-operator --bin fjord-check \
 && mkdir -p /out \
 && objcopy --strip-debug target/release/fjord-operator /out/fjord-operator \
 && objcopy --strip-debug target/release/fjord-check /out/fjord-check

FROM runtime AS operator
COPY --from=builder /out/fjord-operator /out/fjord-check /usr/local/bin/
