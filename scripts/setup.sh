#!/usr/bin/env bash
# Create or reuse .venv and install the project into it; install ffmpeg and espeak-ng when absent;
# build .dvc/offline_plots.html (vega for `dvc plots show` without a network; needs npm only then).
# Fast when nothing changed: the install is skipped while .venv/.install-stamp matches pyproject.toml.
#   scripts/setup.sh [more Debian packages]   (make test adds chromium, for the report check)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# `dvc plots show` without a network: DVC's page loads vega, vega-lite and vega-embed from a CDN, so
# .dvc/config points it at .dvc/offline_plots.html, a page with the same releases DVC asks for inlined.
# Built once from npm (the tarballs checked against the sha256 below); rebuilt only when a pin changes.
vega_pins=(
  "vega@5.20.2 d77deab01d6104b1239228720721f93003e60797d2faced7ffdd759fa70f989d"
  "vega-lite@5.2.0 f64ca4745f043447ac86b67dc9e9592ec2b85ac8b8dafc35faf970f142463e4b"
  "vega-embed@6.18.2 93aeee312e92077b0252ef026c0fe0ec8fa430c19825aeada6cd3a6804e68e1b"
)
plots_page=.dvc/offline_plots.html
plots_pin="<!-- built by scripts/setup.sh from npm: ${vega_pins[*]} -->"
build_plots_page=0
[ "$(head -n 1 "$plots_page" 2>/dev/null)" = "$plots_pin" ] || build_plots_page=1

system_packages=(ffmpeg espeak-ng "$@")
((build_plots_page)) && system_packages+=(npm)  # only to build the page above
missing=()
for tool in "${system_packages[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ((build_plots_page)); then
  echo "setup: building $plots_page (vega, vega-lite, vega-embed from npm)"
  npm_work=$(mktemp -d)
  trap 'rm -rf "$npm_work" "$plots_page.tmp"' EXIT
  {
    echo "$plots_pin"
    printf '<!DOCTYPE html>\n<html>\n<head>\n{refresh_tag}\n<title>DVC Plot</title>\n'
    for pin in "${vega_pins[@]}"; do
      read -r spec sha <<<"$pin"
      name=${spec%@*}
      tarball=$(cd "$npm_work" && npm pack --silent "$spec")
      echo "$sha  $npm_work/$tarball" | sha256sum --check --status \
        || { echo "setup: $spec from npm does not match its pinned sha256 in scripts/setup.sh" >&2; exit 1; }
      # the file DVC's CDN address serves (the package's "jsdelivr" entry), without its source-map line
      js=$(tar -xzOf "$npm_work/$tarball" "package/build/$name.min.js" | sed '/^\/\/# sourceMappingURL=/d')
      case $js in *'</'[Ss][Cc][Rr][Ii][Pp][Tt]*|*'{plot_divs}'*|*'{scripts}'*|*'{refresh_tag}'*)
        echo "setup: $spec cannot be inlined (it holds '</script' or a DVC placeholder)" >&2; exit 1;;
      esac
      printf '<script>/* %s, npm, BSD-3-Clause */\n%s\n</script>\n' "$spec" "$js"
    done
    printf '<style>\ntable { border-spacing: 15px; }\n</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n'
  } >"$plots_page.tmp"
  mv "$plots_page.tmp" "$plots_page"
fi

stamp=.venv/.install-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setup: installing the project into .venv (first time: several minutes, torch is large)"
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
# py-feat needs torchvision; these two releases are the pair that import together (CUDA builds, run on CPU too).
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "from feat import Detectorv2; import opensmile, prefect, duckdb, dvc, mediapipe, sentence_transformers, ai_edge_litert"
echo "$want" > "$stamp"
echo "setup: done"
