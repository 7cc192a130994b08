#!/usr/bin/env bash
# Install everything Warrant needs on Debian 12 (run as root; safe to run again).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(clang llvm libbpf-dev bpftool iproute2)
# transparent mode baselines and namespace tests (tests/transparent_helpers.py)
apt_pkgs+=(ethtool iperf3 curl wireguard-go wireguard-tools)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # no recommends: wireguard-tools would pull in a kernel image and rebuild the initramfs
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_flags=(-q --disable-pip-version-check --root-user-action=ignore)
# Debian's own python3 refuses pip installs (PEP 668) unless told; a pyenv or venv python does not.
if python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")))'; then
  pip_flags+=(--break-system-packages)
fi
python3 -m pip install "${pip_flags[@]}" -e '.[dev,bench,net,k8s]'
echo "setup: done ($(python3 -c 'import warrant; print("warrant", warrant.__version__)'))"
