#!/usr/bin/env bash
# Build the Warrant agent image without a registry: Debian 12 from Debian's own packages
# (debootstrap), the warrant wheel and its dependencies as wheels, then podman (or buildah)
# over the Containerfile; the result is tagged localhost/warrant:<version> in local storage
# and written as an OCI archive to build/image/warrant-<version>.oci.tar (load it into a
# node's runtime, e.g. `ctr -n k8s.io images import`, or push it where you like).
#
#   scripts/build-image.sh           build (root; needs debootstrap and podman or buildah)
#   scripts/build-image.sh --check   no build: check that the Containerfile names only what
#                                    this script provides, and that the tools are there
#
# MIRROR (default http://deb.debian.org/debian) and SUITE (bookworm) choose the base;
# ISOLATION (chroot) how the RUN steps are isolated.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
IMAGE="localhost/warrant:${VERSION}"
SUITE="${SUITE:-bookworm}"
BASE="localhost/warrant-base:${SUITE}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
# chroot: RUN steps need no OCI runtime or cgroup setup (crun refuses hybrid cgroups, as on
# this project's CI machine); ISOLATION=oci for the runtime's full isolation.
ISOLATION="${ISOLATION:-chroot}"
OUT="build/image"
# python3-venv: the image installs into a venv (Debian's python3 is externally managed);
# libbpf1: the loader's libbpf.so.1; mount (required, in minbase): the bpffs init container.
DEB_PACKAGES="python3,python3-venv,libbpf1,iproute2,ca-certificates"

check() {
  local ok=0
  # what the Containerfile copies must be what this script puts in the context
  local copies
  copies="$(awk 'toupper($1) == "COPY" { print $2 }' Containerfile)"
  [ "$copies" = "wheels/" ] || { echo "check: Containerfile copies '$copies', the context holds wheels/ only"; ok=1; }
  grep -q '^ARG BASE=localhost/warrant-base:bookworm$' Containerfile || { echo "check: Containerfile's ARG BASE is not ${BASE}"; ok=1; }
  grep -q '^FROM \${BASE}$' Containerfile || { echo "check: Containerfile must build FROM \${BASE}"; ok=1; }
  grep -q '^ENTRYPOINT \["warrant", "agent"\]$' Containerfile || { echo "check: ENTRYPOINT is not warrant agent"; ok=1; }
  grep -q -- '--no-index --find-links /tmp/wheels' Containerfile || { echo "check: the image must install from the copied wheels only"; ok=1; }
  # the wheel this script builds must carry the datapath (setup.py's build_py)
  [ -f setup.py ] && [ -f bpf/warrant_xdp.c ] || { echo "check: setup.py or bpf/warrant_xdp.c missing"; ok=1; }
  # the DaemonSet runs the image this script tags
  grep -q "image: ${IMAGE}\$" deploy/kubernetes/daemonset.yaml || { echo "check: the DaemonSet does not run ${IMAGE}"; ok=1; }
  local tools=()
  command -v debootstrap >/dev/null || tools+=(debootstrap)
  command -v podman >/dev/null || command -v buildah >/dev/null || tools+=("podman or buildah")
  if [ ${#tools[@]} -gt 0 ]; then
    echo "check: to build, install ${tools[*]} (apt-get install podman debootstrap)"
  fi
  [ $ok -eq 0 ] && echo "check: ok (${IMAGE} from ${BASE})"
  return $ok
}

if [ "${1:-}" = "--check" ]; then
  check
  exit $?
fi
check
[ "$(id -u)" -eq 0 ] || { echo "build-image: run as root (debootstrap)"; exit 1; }
if command -v podman >/dev/null; then TOOL=podman; else TOOL=buildah; fi

mkdir -p "$OUT"
rm -rf "$OUT/wheels"
echo "build-image: wheels (warrant ${VERSION} and its dependencies)"
python3 -m pip wheel . --no-deps -q -w "$OUT/wheels"
python3 -m pip wheel "$(ls "$OUT"/wheels/warrant-"${VERSION}"-*.whl)[k8s]" -q -w "$OUT/wheels"

if ! $TOOL image exists "$BASE" 2>/dev/null; then
  echo "build-image: ${BASE} from ${MIRROR} (debootstrap ${SUITE})"
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include="$DEB_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$OUT/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | $TOOL import - "$BASE" >/dev/null
fi

echo "build-image: ${IMAGE} with ${TOOL}"
if [ "$TOOL" = podman ]; then
  podman build --pull=never --isolation="$ISOLATION" --build-arg "BASE=${BASE}" -f Containerfile -t "$IMAGE" "$OUT"
  podman save --format oci-archive -o "$OUT/warrant-${VERSION}.oci.tar" "$IMAGE"
else
  buildah build --pull=never --isolation="$ISOLATION" --build-arg "BASE=${BASE}" -f Containerfile -t "$IMAGE" "$OUT"
  buildah push "$IMAGE" "oci-archive:$OUT/warrant-${VERSION}.oci.tar:${IMAGE}"
fi
echo "build-image: ${IMAGE}; archive ${OUT}/warrant-${VERSION}.oci.tar"
