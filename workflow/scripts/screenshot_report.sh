#!/usr/bin/env bash
# The first screen of the HTML report as a PNG, drawn by headless Chromium (installs nothing):
#   bash workflow/scripts/screenshot_report.sh [REPORT.html] [OUT.png]
set -euo pipefail
report=${1:-report.html}
out=${2:-${report%.html}.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
    echo "No Chromium on PATH: install it (Debian: apt-get install chromium), or open $report in any browser." >&2
    exit 1
fi
if [[ ! -f $report ]]; then
    echo "No $report: run \`make report\` after a run first." >&2
    exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f "$out"
# --no-sandbox: Chromium refuses to run as root without it (containers); the page is a local file.
# --virtual-time-budget: let the report's scripts draw the page before the shot.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$scratch/profile" --window-size=1400,1000 --virtual-time-budget=10000 \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$report")" >"$scratch/log" 2>&1 || true
if [[ ! -s $out ]]; then
    echo "Chromium wrote no screenshot; its output:" >&2
    cat "$scratch/log" >&2
    exit 1
fi
echo "The first screen of $report: $out"
