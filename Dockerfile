# syntax=docker/dockerfile:1
#
# One image for every Supa binary:
#
#   docker build -t supa .
#   docker run supa supa-gateway          (the default command)
#   docker run supa supa-tenant-manager
#   docker run supa supa-rest | supa-auth | supa-storage | supa-realtime
#              | supa-functions | supa-meta | supa ...
#
# The runtime stage is distroless: glibc, CA roots and a non-root user,
# nothing else (no shell, no package manager). See docs/deploy.md.

ARG RUST_VERSION=1.95

# --- dependencies: built from the manifests alone, so this layer is reused
# until Cargo.toml or Cargo.lock change ---------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY supa-core/Cargo.toml supa-core/
COPY supa-db/Cargo.toml supa-db/
COPY supa-auth/Cargo.toml supa-auth/
COPY supa-keys/Cargo.toml supa-keys/
COPY supa-rest/Cargo.toml supa-rest/
COPY supa-router/Cargo.toml supa-router/
COPY supa-tenant/Cargo.toml supa-tenant/
COPY supa-meta/Cargo.toml supa-meta/
COPY supa-storage/Cargo.toml supa-storage/
COPY supa-realtime/Cargo.toml supa-realtime/
COPY supa-functions/Cargo.toml supa-functions/
COPY supa-studio/Cargo.toml supa-studio/
COPY supa-testkit/Cargo.toml supa-testkit/
COPY bins/supa/Cargo.toml bins/supa/
COPY bins/supa-gateway/Cargo.toml bins/supa-gateway/
COPY bins/supa-tenant-manager/Cargo.toml bins/supa-tenant-manager/
COPY bins/supa-rest/Cargo.toml bins/supa-rest/
COPY bins/supa-auth/Cargo.toml bins/supa-auth/
COPY bins/supa-storage/Cargo.toml bins/supa-storage/
COPY bins/supa-realtime/Cargo.toml bins/supa-realtime/
COPY bins/supa-functions/Cargo.toml bins/supa-functions/
COPY bins/supa-meta/Cargo.toml bins/supa-meta/
COPY bindings/python/Cargo.toml bindings/python/
COPY benches/Cargo.toml benches/
COPY examples/keys-and-tokens/Cargo.toml examples/keys-and-tokens/
# Every member gets an empty target, enough for cargo to resolve the
# workspace and build all of its dependencies.
RUN for manifest in */Cargo.toml */*/Cargo.toml; do \
      dir=$(dirname "$manifest"); mkdir -p "$dir/src"; \
      case "$dir" in \
        bins/*) echo 'fn main() {}' > "$dir/src/main.rs" ;; \
        *) : > "$dir/src/lib.rs" ;; \
      esac; \
      for bench in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' "$manifest"); do \
        mkdir -p "$dir/benches" && echo 'fn main() {}' > "$dir/benches/$bench.rs"; \
      done; \
    done
ENV BINARIES="-p supa -p supa-gateway -p supa-tenant-manager -p supa-rest-bin -p supa-auth-bin -p supa-storage-bin -p supa-realtime-bin -p supa-functions-bin -p supa-meta-bin"
RUN cargo build --release --locked $BINARIES

# --- the binaries -------------------------------------------------------------
FROM deps AS build
COPY . .
# The stubs' fingerprints are older than the real sources, so cargo rebuilds
# only the workspace's own crates.
RUN find . -path ./target -prune -o -name '*.rs' -exec touch {} + \
 && cargo build --release --locked $BINARIES \
 && mkdir /out \
 && cp target/release/supa target/release/supa-gateway target/release/supa-tenant-manager \
       target/release/supa-rest target/release/supa-auth target/release/supa-storage \
       target/release/supa-realtime target/release/supa-functions target/release/supa-meta /out/

# --- Deno, the edge functions' runtime, at the version runtime/deno pins ------
FROM node:22-bookworm-slim AS deno
WORKDIR /deno
COPY runtime/deno/package.json runtime/deno/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
 && cp node_modules/@deno/linux-x64-glibc/deno /deno/deno

# --- runtime ------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY --from=deno /deno/deno /usr/local/bin/deno
# 65532 is distroless's `nonroot`; data (functions' bundles, file storage)
# goes under its home unless the settings point elsewhere.
USER 65532:65532
WORKDIR /home/nonroot
ENV SUPA_DENO=/usr/local/bin/deno \
    SUPA_DATA_DIR=/home/nonroot/data \
    SUPA_FUNCTIONS_DIR=/home/nonroot/functions
# 8000: the gateway; 8001: the Management API (tenant manager).
EXPOSE 8000 8001
# `supa health` is the probe (no curl here); set SUPA_HEALTH_URL for a
# binary other than the gateway, for example http://127.0.0.1:8001/health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/supa", "health"]
CMD ["supa-gateway"]
