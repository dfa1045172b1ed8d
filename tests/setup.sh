#!/bin/sh
# Installs everything the tests and the demo need, idempotently:
#   - system packages that are missing (Debian's apt)
#   - a Python virtual environment with tests/requirements.txt
#   - aws-cdk-lib for the CDK test (cached the same way)
#   - the Node.js test functions' packages (aws-lambda-ric builds a native client with
#     cmake for about two minutes, so the result is cached outside the work tree, keyed by
#     the lock file, where later runs and CI on the same machine reuse it)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${LAMBDA_METER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-meter}

# tool:package pairs; a missing tool installs its package.
missing=
for pair in cc:gcc c++:g++ make:make dash:dash od:coreutils python3:python3 \
    node:nodejs npm:npm cmake:cmake autoreconf:autoconf automake:automake \
    libtoolize:libtool ruby:ruby curl:curl nm:binutils javac:openjdk-17-jdk-headless \
    bash:bash awk:mawk unzip:unzip qemu-aarch64-static:qemu-user-static php:php-cli strace:strace; do
    tool=${pair%%:*}
    command -v "$tool" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# PHP's curl extension (a PHP custom runtime's usual HTTP client, loaded with RTLD_DEEPBIND).
if ! command -v php >/dev/null 2>&1 || ! php -m 2>/dev/null | grep -qx curl; then
    missing="$missing php-curl"
fi
# The arm64 C library and loader that qemu runs arm64 programs with.
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing="$missing libc6-arm64-cross"
if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# Python: awslambdaric (the runtime client under test) and jsonschema (EMF validation).
venv=target/test-env/venv
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
    echo "setup: creating the Python test environment in $venv"
    rm -rf "$venv"
    mkdir -p target/test-env
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$stamp"
fi

# Node.js: aws-lambda-ric from npm, with its native client built once per lock file.
node_fn=tests/functions/node
key=$(sha256sum "$node_fn/package-lock.json" | cut -c1-16)
node_cache=$cache/node-$key
if [ ! -f "$node_cache/.complete" ]; then
    echo "setup: installing the Node.js test packages into $node_cache (builds a native client)"
    rm -rf "$node_cache"
    mkdir -p "$node_cache"
    cp "$node_fn/package.json" "$node_fn/package-lock.json" "$node_cache/"
    (cd "$node_cache" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    if [ ! -f "$node_cache/node_modules/aws-lambda-ric/dist/rapid-client.node" ]; then
        (cd "$node_cache" && npm rebuild aws-lambda-ric --loglevel=error >/dev/null)
    fi
    [ -f "$node_cache/node_modules/aws-lambda-ric/dist/rapid-client.node" ] || {
        echo "setup: aws-lambda-ric's native client was not built" >&2
        exit 1
    }
    touch "$node_cache/.complete"
fi
if [ -e "$node_fn/node_modules" ] && [ ! -L "$node_fn/node_modules" ]; then
    rm -rf "$node_fn/node_modules"
fi
ln -sfn "$node_cache/node_modules" "$root/$node_fn/node_modules"

# CDK: aws-cdk-lib and constructs from npm for tests/cdk.rs (cdk synth, no AWS account),
# cached by lock file like the Node packages.
cdk_dir=tests/cdk
cdk_key=$(sha256sum "$cdk_dir/package-lock.json" | cut -c1-16)
cdk_cache=$cache/cdk-$cdk_key
if [ ! -f "$cdk_cache/.complete" ]; then
    echo "setup: installing aws-cdk-lib into $cdk_cache"
    rm -rf "$cdk_cache"
    mkdir -p "$cdk_cache"
    cp "$cdk_dir/package.json" "$cdk_dir/package-lock.json" "$cdk_cache/"
    (cd "$cdk_cache" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$cdk_cache/.complete"
fi
ln -sfn "$cdk_cache/node_modules" "$root/$cdk_dir/node_modules"
