#!/bin/sh
# Installs, idempotently, the one thing `make demo` needs beside Rust and Python 3: a virtual
# environment in target/demo-env/venv with awslambdaric (AWS's Python runtime client, a
# wheel from PyPI, the same version the tests use).
set -eu
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "demo: installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
venv=target/demo-env/venv
want=$(grep '^awslambdaric==' tests/requirements.txt)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirement" 2>/dev/null)" != "$want" ]; then
    echo "demo: installing $want into $venv"
    rm -rf "$venv"
    mkdir -p target/demo-env
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: "$want"
    echo "$want" >"$venv/.requirement"
fi
