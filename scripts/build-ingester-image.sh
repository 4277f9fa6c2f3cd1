#!/usr/bin/env bash
# Builds the ingester's container image for the stack's Fargate task (linux/arm64) and, with a
# repository, pushes it (docs/DEPLOY.md, "The ingester"):
#
#   1. cross-compiles services/ingester and services/live-fanout (the live-update fan-out, which
#      runs from the same image with its own entry point) for aarch64 the way the functions are
#      built: cargo-lambda
#      with zig as the linker, release profile (fat LTO; ~9 min from cold on 2 cores) -
#      `cargo lambda build` builds any binary of the workspace, not only Lambda handlers;
#   2. checks that both are AArch64 ELFs and prints their sizes;
#   3. docker build -f infra/ingester.Dockerfile (distroless, non-root) in a context of its own;
#   4. with INGESTER_REPOSITORY_URI: logs in to ECR and pushes <repository>:<tag>, then prints the
#      `sam deploy --parameter-overrides IngesterImageUri=...` to run.
#
# Without docker (as on the build machine of this repository) it stops after step 2 and says so:
# the binary is ready; build the image where docker runs.
#
# Environment:
#   INGESTER_REPOSITORY_URI  the stack's IngesterRepositoryUri output (push when set), e.g.
#                            123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-dev-ingesterrepository-abc
#   IMAGE_TAG                default: the commit (git rev-parse --short=12 HEAD). The repository's
#                            tags are immutable, so a build of a dirty tree is refused a commit's
#                            tag: commit first, or set IMAGE_TAG yourself (e.g. <commit>-wip1).
#   INFRA_VENV=DIR           virtualenv with cargo-lambda and zig (default .local/infra-venv;
#                            scripts/validate-infra.sh creates it)
#   DOCKER=docker            the container CLI (podman works too)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${INFRA_VENV:-$ROOT/.local/infra-venv}"
DOCKERFILE="infra/ingester.Dockerfile"
DOCKER="${DOCKER:-docker}"
BINARIES=(ingester live-fanout)

# --- the tag -------------------------------------------------------------------------------------
if [[ -z "${IMAGE_TAG:-}" ]]; then
  IMAGE_TAG="$(git rev-parse --short=12 HEAD)"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    if [[ -n "${INGESTER_REPOSITORY_URI:-}" ]]; then
      echo "error: the working tree has uncommitted changes; the image would be pushed under the" >&2
      echo "       tag of commit $IMAGE_TAG forever (immutable tags). Commit first, or set IMAGE_TAG." >&2
      exit 1
    fi
    IMAGE_TAG="$IMAGE_TAG-dirty"
  fi
fi
if ! [[ "$IMAGE_TAG" =~ ^[A-Za-z0-9._-]{1,128}$ ]]; then
  echo "error: IMAGE_TAG '$IMAGE_TAG' is not a valid image tag" >&2
  exit 1
fi

# --- 1. the binary -------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/cargo-lambda" ]]; then
  echo "error: cargo-lambda is missing from $VENV: run scripts/validate-infra.sh once (it installs" >&2
  echo "       scripts/requirements-infra.txt there), or set INFRA_VENV" >&2
  exit 1
fi
# cargo-lambda finds zig through `python3 -m ziglang` of the venv.
export PATH="$VENV/bin:$PATH"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "==> adding the Rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
echo "==> cargo lambda build --release --arm64 --bin ingester --bin live-fanout"
START=$SECONDS
cargo lambda build --release --arm64 --bin ingester --bin live-fanout
echo "    built in $((SECONDS - START)) s"

# --- 2. what was built ---------------------------------------------------------------------------
# ELF e_machine (2 bytes at offset 18): 183 = AArch64.
for name in "${BINARIES[@]}"; do
  BINARY="target/lambda/$name/bootstrap"
  machine=$(od -An -t u2 -j 18 -N 2 "$BINARY" | tr -d ' ')
  if [[ "$machine" != "183" ]]; then
    echo "error: $BINARY is not an AArch64 ELF (e_machine $machine)" >&2
    exit 1
  fi
  bytes=$(stat -c %s "$BINARY")
  printf '    %s: %d bytes (%.1f MiB), ELF aarch64\n' "$BINARY" "$bytes" "$(awk "BEGIN { print $bytes / 1048576 }")"
done

# --- 3. the image --------------------------------------------------------------------------------
if ! command -v "$DOCKER" >/dev/null 2>&1 || ! "$DOCKER" info >/dev/null 2>&1; then
  echo
  if command -v "$DOCKER" >/dev/null 2>&1; then
    echo "'$DOCKER' is installed but its daemon does not answer ('$DOCKER info' fails): stopping"
    echo "after the binaries (target/lambda/{ingester,live-fanout}/bootstrap)."
  else
    echo "'$DOCKER' is not installed here: stopping after the binaries (target/lambda/{ingester,live-fanout}/bootstrap)."
  fi
  echo "On a machine with docker (and buildx for arm64 on x86), from the repository root:"
  echo "  scripts/build-ingester-image.sh   # with INGESTER_REPOSITORY_URI=<the stack's output> to push"
  exit 0
fi
CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
for name in "${BINARIES[@]}"; do
  cp "target/lambda/$name/bootstrap" "$CONTEXT/$name"
done
cp "$DOCKERFILE" "$CONTEXT/Dockerfile"
IMAGE="${INGESTER_REPOSITORY_URI:-orders-ingester}:$IMAGE_TAG"
echo "==> $DOCKER build --platform linux/arm64 -t $IMAGE"
"$DOCKER" build --platform linux/arm64 --tag "$IMAGE" "$CONTEXT"

# --- 4. push -------------------------------------------------------------------------------------
if [[ -z "${INGESTER_REPOSITORY_URI:-}" ]]; then
  echo
  echo "Built $IMAGE (not pushed: set INGESTER_REPOSITORY_URI to the stack's IngesterRepositoryUri)."
  exit 0
fi
REGISTRY="${INGESTER_REPOSITORY_URI%%/*}"
REGION="$(cut -d. -f4 <<<"$REGISTRY")"
echo "==> $DOCKER login $REGISTRY, push $IMAGE"
aws ecr get-login-password --region "$REGION" | "$DOCKER" login --username AWS --password-stdin "$REGISTRY"
"$DOCKER" push "$IMAGE"
echo
echo "Pushed. Deploy it: set IngesterImageUri=\"$IMAGE\" (and ExecutionFeedUrl) in samconfig.toml's"
echo "parameter_overrides, then 'sam build && sam deploy' - or 'sam deploy --parameter-overrides ...'"
echo "with ALL of that list repeated (the command line replaces it; docs/DEPLOY.md, \"The ingester\")."
