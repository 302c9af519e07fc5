#!/usr/bin/env bash
# `make look`: render the HTML report and take a headless-chromium screenshot of it (report.png),
# so a person (or a reviewer without a browser) can look at what analysts will receive.
#
#   scripts/look.sh [--lake L] [--out report.html] [--png report.png] [--start T] [--end T]
#
# Uses the lake at $POWERFLEX_LAKE (default ./lake); if that lake holds no data yet it runs
# `powerflex-etl demo` first. Needs Debian's chromium (it says so, and stops, when it is missing).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
LAKE=${POWERFLEX_LAKE:-./lake}
OUT=report.html
PNG=report.png
RANGE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --lake) LAKE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --png) PNG=$2; shift 2 ;;
        --start|--end) RANGE+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "look.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$BIN/python" ]; then
    echo "look.sh: no virtualenv at ${VENV:-.venv}; run 'make venv' first" >&2
    exit 1
fi

if ! find "$LAKE/ct_response" -name '*.parquet' -print -quit 2>/dev/null | grep -q .; then
    echo "look.sh: $LAKE holds no telemetry yet; running 'powerflex-etl demo --lake $LAKE' first"
    "$BIN/powerflex-etl" demo --lake "$LAKE"
fi

"$BIN/powerflex-etl" report --lake "$LAKE" --out "$OUT" "${RANGE[@]}"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    # never installs anything itself: that is the machine owner's call
    echo "look.sh: chromium is not installed (Debian: apt-get install chromium); $OUT is written, no PNG" >&2
    exit 1
fi

PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
# every network feature off: the report must render from the file alone
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$PROFILE" --screenshot="$PNG" --window-size=1400,4000 \
    "file://$(realpath "$OUT")" 2>/dev/null
echo "look.sh: $OUT rendered to $PNG"
