# syntax=docker/dockerfile:1
# The controller image: the `datadump` binary on distroless (glibc, no shell, user 65532), plus
# the lean `datadump-worker` binaries EC2 instances run (the worker crate alone: no Kubernetes,
# no EC2 SDK), one per architecture, stripped, built with zig against glibc 2.28
# so that they run on Amazon Linux 2023 (2.34) and newer. The controller copies them into each
# destination bucket once (--worker-binaries-dir), so workers need no internet.
#   docker build -t ghcr.io/datadump-dev/datadump-operator:0.1.0 .
# Cache mounts keep the cargo registry and target/ between builds (BuildKit).

FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null \
 && pip3 install --break-system-packages -q ziglang==0.17.0 \
 && cargo install --locked --quiet cargo-zigbuild --version 0.24.1 \
 && rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin datadump \
 && install -D -m 0755 target/release/datadump /out/datadump \
 && for arch in x86_64 aarch64; do \
      CARGO_PROFILE_RELEASE_STRIP=symbols cargo zigbuild --release --locked -p datadump-worker --bin datadump-worker --target "$arch-unknown-linux-gnu.2.28" \
      && install -D -m 0755 "target/$arch-unknown-linux-gnu/release/datadump-worker" "/out/worker/datadump-worker-$arch"; \
    done

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/datadump /usr/local/bin/datadump
COPY --from=build /out/worker/ /usr/local/lib/datadump/worker/
USER 65532:65532
# glibc malloc: two arenas, and large or freed-at-the-top blocks go back to the system at once
# rather than being kept for reuse. At 1,000 DataDumps this took the controller's steady RSS
# from 75.8 to 63.2 MiB (docs/benchmarks.md, section 1); the live heap is ~30 MiB.
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
# /metrics, /healthz, /readyz (DATADUMP_HTTP_ADDR)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/datadump"]
CMD ["controller"]
