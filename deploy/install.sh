#!/usr/bin/env bash
# Install wsidist from this checkout: the one install step of CI (.ci/run) and of the image
# (deploy/Dockerfile), so the image's install is the one CI runs on every change.
#
#   deploy/install.sh --editable test    # CI and the README: pip install -e ".[test]"
#   deploy/install.sh dashboard          # the image: pip install ".[dashboard]"
#
# Then it checks that OpenSlide loads (from the openslide-bin wheel) and that the CLI starts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
editable=()
if [[ "${1:-}" == "--editable" ]]; then
    editable=(-e)
    shift
fi
extras="${1:-}"
target="${root}${extras:+[${extras}]}"
python -m pip install "${editable[@]}" "${target}"
python -c "import openslide; print('wsidist installed; OpenSlide', openslide.__library_version__)"
wsidist --help > /dev/null
