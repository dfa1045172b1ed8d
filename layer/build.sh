#!/bin/sh
# Builds target/layer/lambda-meter-<version>-x86_64.zip and …-arm64.zip: the wrapper, the
# custom-metrics shims (the Java one needs javac) and the library, built with cargo-zigbuild against glibc 2.26 (Amazon Linux 2; AL2023 has 2.34), so
# the same layer loads on every managed runtime of its architecture.
set -eu
cd "$(dirname "$0")/.."
sh layer/tools.sh
command -v javac >/dev/null 2>&1 ||
    echo "layer: javac not found: the zips will have no Java shim (java/lib/lambda-meter.jar); install a JDK for it" >&2
root=$(pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
out=target/layer
mkdir -p "$out"
for arch in x86_64 arm64; do
    case $arch in
        x86_64) triple=x86_64-unknown-linux-gnu ;;
        arm64) triple=aarch64-unknown-linux-gnu ;;
    esac
    PATH="$root/target/layer-tools/bin:$PATH" \
        cargo zigbuild --quiet --release --target "$triple.2.26" -p lambda_meter
    lib=target/$triple/release/liblambda_meter.so
    sh layer/assemble.sh "$lib" "$out/$arch"
    zip="$out/lambda-meter-$version-$arch.zip"
    python3 layer/mkzip.py "$out/$arch" "$zip"
    printf '%-7s library %8d bytes   zip %8d bytes   %s\n' "$arch" \
        "$(wc -c <"$lib")" "$(wc -c <"$zip")" "$zip"
done
