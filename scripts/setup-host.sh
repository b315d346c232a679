#!/usr/bin/env bash
# Installs what lxcform needs to build and test on Debian, and creates the lxcbr0 bridge that
# LXC's default network config attaches containers to. Idempotent; run as root.
set -euo pipefail

packages=(lxc lxc-dev libclang-dev clang pkg-config busybox-static btrfs-progs rsync tar
          gzip bzip2 xz-utils zstd acl attr python3-venv python3-lxc debootstrap iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
        [ -x "$d/cargo" ] && { echo "setup-host: cargo is in $d; add it to PATH"; exit 1; }
    done
    echo "setup-host: no Rust toolchain found; installing Debian's cargo"
    apt-get install -y -qq cargo rustc >/dev/null
fi

if ! ip link show lxcbr0 >/dev/null 2>&1; then
    echo "setup-host: creating bridge lxcbr0 (10.0.3.1/24)"
    ip link add lxcbr0 type bridge
    ip addr add 10.0.3.1/24 dev lxcbr0
    ip link set lxcbr0 up
fi
