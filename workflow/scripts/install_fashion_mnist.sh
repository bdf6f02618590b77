#!/usr/bin/env bash
# Debian's dataset-fashion-mnist (the original IDX files under /usr/share/datasets/fashion-mnist):
# the Fashion-MNIST track's second source (DESIGN.md "Data sources"). Installed where apt-get
# and root are available; elsewhere the workflow falls back to the download, and then to its
# message naming the files and the ways to provide them. Used by `make demo` and `.ci/run`.
# Exit status 1 (with a warning) when the package is neither installed nor installable here.
set -uo pipefail
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 && exit 0
warn() { echo "warning: Debian's dataset-fashion-mnist is not installed ($1); the workflow will try the download" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || warn "no apt-get"
[ "$(id -u)" = 0 ] || warn "not root: sudo apt-get install dataset-fashion-mnist"
install() { timeout 300 apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; }
install || { timeout 300 apt-get update -qq >/dev/null 2>&1 && install; } || warn "apt-get install failed"
