# The ingester's container image (linux/arm64, for the stack's Fargate tasks; infra/template.yaml,
# IngesterTaskDefinition and LiveFanoutTaskDefinition). It holds two binaries: the ingester (the
# entry point) and the live-update fan-out (services/live-fanout; its task definition names it as
# EntryPoint). Built by scripts/build-ingester-image.sh, which cross-compiles both from this
# workspace first (cargo lambda build --release --arm64 --bin ingester --bin live-fanout: zig as
# the linker, the same toolchain as the functions) and passes them in a build context of its own
# (the binaries and this file, not the 2-4 GB target directory).
#
# The runtime is distroless "cc": glibc, libgcc and the CA certificates (for the exchange's wss://
# feed and Secrets Manager; RDS's CA bundle is inside the binary), no shell, no package manager.
# The tag :nonroot runs as uid/gid 65532. Pin it by digest for reproducible images
# (docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot).
FROM --platform=linux/arm64 gcr.io/distroless/cc-debian12:nonroot

# Owned by root, mode 0755 as cargo wrote it: the non-root user runs it and cannot change it.
# (No COPY --chmod: the legacy builder, without BuildKit, refuses it.)
COPY ingester /usr/local/bin/ingester
COPY live-fanout /usr/local/bin/live-fanout

# Non-root, and the task definition says so too (User 65532:65532, read-only root filesystem:
# the ingester writes nothing but its logs to stdout).
USER 65532:65532

# ECS stops the task with SIGTERM: the ingester finishes its batch and gives its lease up
# (services/ingester/src/main.rs). Exec form, so the binary is PID 1 and receives the signal.
ENTRYPOINT ["/usr/local/bin/ingester"]
