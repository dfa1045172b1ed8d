#!/bin/sh
# Installs, idempotently, what `make layer` needs: zig and cargo-zigbuild from PyPI in
# target/layer-tools, and the arm64 Rust target.
set -eu
cd "$(dirname "$0")/.."
venv=target/layer-tools
if [ ! -x "$venv/bin/cargo-zigbuild" ] || ! cmp -s layer/requirements.txt "$venv/.requirements"; then
    echo "layer: installing zig and cargo-zigbuild into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r layer/requirements.txt
    cp layer/requirements.txt "$venv/.requirements"
fi
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
