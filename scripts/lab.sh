#!/usr/bin/env bash
# Open JupyterLab on notebooks/ of this checkout (the notebooks' source: what you change there
# is what the package ships). Without a screen (no DISPLAY), print the URL instead of opening
# a browser. KVMLAB_LAB_PORT and KVMLAB_LAB_IP choose where it listens. A pip user runs
# `kvmlab lab [DIR]` instead, which copies the shipped notebooks into DIR first.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/kvmlab lab notebooks
