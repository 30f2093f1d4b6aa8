#!/usr/bin/env bash
# Open JupyterLab on notebooks/. Without a screen (no DISPLAY), print the URL instead of
# opening a browser. KVMLAB_LAB_PORT and KVMLAB_LAB_IP choose where it listens.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--ServerApp.root_dir=notebooks --ip="${KVMLAB_LAB_IP:-127.0.0.1}"
      --port="${KVMLAB_LAB_PORT:-8888}")
[ -n "${DISPLAY:-}" ] || args+=(--no-browser)
[ "$(id -u)" -ne 0 ] || args+=(--allow-root)
echo "kvmlab: starting JupyterLab on notebooks/ (stop it with Ctrl-C)"
exec .venv/bin/jupyter lab "${args[@]}"
