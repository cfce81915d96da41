#!/bin/bash
# install-promtool.sh [DIR] -- put Debian 12's promtool (package prometheus, 2.42) in DIR
# (default .venv/bin), for the unit tests of the alert rules (tests/unit/monitoring/).
# Only the one binary: installing the package would also start a Prometheus on :9090, the
# port the lab publishes. The .deb is fetched with apt-get download (no root needed, no
# package installed) and unpacked in a temporary directory. Does nothing when DIR's
# promtool is already 2.42.
set -euo pipefail

dir="${1:-.venv/bin}"
want="2.42"
target="$dir/promtool"

if [ -x "$target" ] && "$target" --version 2>&1 | grep -q "^promtool, version $want\."; then
    exit 0
fi
for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is missing: this script needs Debian's (or Ubuntu's) package tools" >&2
        exit 1
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory (a subshell keeps ours); as root it
# would drop to the user _apt, who cannot write in our private temporary directory.
sandbox=()
if [ "$(id -u)" = 0 ]; then
    sandbox=(-o APT::Sandbox::User=root)
fi
download() { (cd "$work" && apt-get download -qq "${sandbox[@]}" prometheus); }
# A fresh machine may have no package lists yet: as root, fetch them once and retry.
if ! download && ! { [ "$(id -u)" = 0 ] && apt-get update -qq && download; }; then
    echo "apt-get download prometheus failed: run 'apt-get update' (as root) and try again" >&2
    exit 1
fi
debs=("$work"/prometheus_*.deb)
dpkg-deb -x "${debs[0]}" "$work/root"
if ! "$work/root/usr/bin/promtool" --version 2>&1 | grep -q "^promtool, version $want\."; then
    echo "the prometheus package apt offers is not $want:" >&2
    "$work/root/usr/bin/promtool" --version >&2 || true
    exit 1
fi
mkdir -p "$dir"
install -m 0755 "$work/root/usr/bin/promtool" "$target"
"$target" --version | head -1
