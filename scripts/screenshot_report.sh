#!/usr/bin/env bash
# Render the HTML report in headless Chromium and save a screenshot, to check how it looks.
#   scripts/screenshot_report.sh [REPORT.html] [OUT.png] [MORE CHROMIUM FLAGS...]
# Needs Debian's chromium (apt-get install chromium); writes the report first if it is absent.
set -euo pipefail
report="${1:-data/models/demo/report.html}"
out="${2:-${report%.html}.png}"
command -v chromium >/dev/null || { echo "chromium is missing: sudo apt-get install chromium" >&2; exit 2; }
[ -f "$report" ] || mcncl report --out "$report"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1900 \
  "${@:3}" --screenshot="$out" "file://$(realpath "$report")" 2>/dev/null
echo "screenshot: $out"
