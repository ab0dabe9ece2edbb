# syntax=docker/dockerfile:1
# The controller image: the `datadump` binary on distroless (glibc, no shell, user 65532).
#   docker build -t ghcr.io/datadump-dev/datadump-operator:0.1.0 .
# The builder is Debian 12 like the runtime, so the binary's glibc symbols exist at run time.
# Cache mounts keep the cargo registry and target/ between builds (BuildKit).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin datadump \
 && install -D -m 0755 target/release/datadump /out/datadump

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/datadump /usr/local/bin/datadump
USER 65532:65532
# /metrics, /healthz, /readyz (DATADUMP_HTTP_ADDR)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/datadump"]
CMD ["controller"]
