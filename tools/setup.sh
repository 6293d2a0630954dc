#!/usr/bin/env bash
# One-command, idempotent set-up of a Plimsoll checkout (called by `make setup`).
#
#   1. node_modules/   `npm ci`, only when missing or package-lock.json changed   (stamp)
#   2. .venv/          python3.11 venv + pinned requirements-dev.txt, only on change (stamp)
#   3. editable install of the `plimsoll` package into .venv, only when pyproject changed (stamp)
#   4. ~/.solcx/solc-v<ver>  the Node solc stand-in (tools/solc.js), so py-solc-x and brownie
#                            use it and never try to download a compiler; also .tools/bin/solc
#   5. ~/.brownie/network-config.yaml  `development` = anvil (brownie's default) + `ganache-local`
#   6. the wallet app's bundle (esbuild: plimsoll/app/web/*.js + viem -> plimsoll/app/static/app.js)
#      when its sources changed, and a browser for its tests: Debian's chromium (`apt-get install
#      -y chromium` when running as root, as CI does; otherwise one line saying what to install)
#
# Stamps live in .tools/stamps/. A second run does nothing but hash a few files (~1 s).
# Environment: PYTHON (default python3.11), FORCE=1 to redo every step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMPS="$ROOT/.tools/stamps"
mkdir -p "$STAMPS"
PYTHON="${PYTHON:-python3.11}"
FORCE="${FORCE:-0}"

log() { printf '[setup] %s\n' "$*" >&2; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ "$FORCE" != 1 ] && [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_write() { printf '%s\n' "$2" >"$STAMPS/$1"; }
# pip's machine config on our boxes names local indexes that may be absent: drop that noise.
quiet_pip() { grep -v "^WARNING: Location 'file://" || true; }

# --- 1. npm ------------------------------------------------------------------------------------
npm_key="$(hash_of package.json package-lock.json)-node-$(node --version)"
if [ -d node_modules ] && [ -x node_modules/.bin/anvil ] && [ -d node_modules/solc ] \
    && stamp_ok npm "$npm_key"; then
  :
else
  log "npm ci (package-lock.json changed or node_modules missing)"
  npm ci --no-audit --no-fund --loglevel=error
  stamp_write npm "$npm_key"
fi
for bin in anvil forge cast; do
  [ -x "node_modules/.bin/$bin" ] || { log "node_modules/.bin/$bin missing after npm ci"; exit 1; }
done

# --- 2. venv -----------------------------------------------------------------------------------
venv_key="$(hash_of requirements.txt requirements-dev.txt)-$("$PYTHON" --version 2>&1)"
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    2>/dev/null && stamp_ok venv "$venv_key"; then
  :
else
  if ! [ -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    log "creating .venv with $PYTHON"
    rm -rf .venv
    "$PYTHON" -m venv .venv
  fi
  log "pip install -r requirements-dev.txt"
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt 2>&1 \
      | quiet_pip; then
    log "pip install failed"; exit 1
  fi
  rm -f "$STAMPS/editable"   # a recreated venv needs the editable install again
  stamp_write venv "$venv_key"
fi

# --- 3. editable install of the project --------------------------------------------------------
# editable_mode=compat puts the repo root on sys.path via a .pth file, so packages created after
# the install (plimsoll/ and friends are being written) are importable without reinstalling.
edit_key="$(hash_of pyproject.toml)"
if stamp_ok editable "$edit_key" && .venv/bin/python -c 'import importlib.metadata as m; m.distribution("plimsoll")' 2>/dev/null; then
  :
else
  log "pip install -e . --no-deps"
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps \
      --config-settings editable_mode=compat -e . 2>&1 | quiet_pip; then
    log "editable install failed"; exit 1
  fi
  stamp_write editable "$edit_key"
fi

# --- 4. solc stand-in for py-solc-x / brownie --------------------------------------------------
SOLC_VERSION="$(node -p 'require("./node_modules/solc/package.json").version')"
SOLCX_DIR="${SOLCX_BINARY_PATH:-$HOME/.solcx}"
SOLC_SHIM="$SOLCX_DIR/solc-v$SOLC_VERSION"
# The shim runs tools/solc.js of the Plimsoll checkout that contains the current directory (so
# several clones, e.g. CI's, do not fight over it), else of the checkout that installed it.
shim_text="#!/bin/sh
# plimsoll-solc-shim v1, installed by $ROOT/tools/setup.sh:
# solc $SOLC_VERSION via the npm solc module (tools/solc.js of a Plimsoll checkout).
d=\"\$PWD\"
while [ -n \"\$d\" ]; do
  if [ -f \"\$d/tools/solc.js\" ] && [ -d \"\$d/node_modules/solc\" ]; then exec node \"\$d/tools/solc.js\" \"\$@\"; fi
  d=\"\${d%/*}\"
done
exec node \"$ROOT/tools/solc.js\" \"\$@\"
"
# Keep an existing shim of ours whose fallback checkout still exists (no flip-flop between clones).
shim_fallback="$(sed -n 's/^exec node "\(.*\)" "\$@"$/\1/p' "$SOLC_SHIM" 2>/dev/null || true)"
if [ -L "$SOLC_SHIM" ] || ! [ -f "$SOLC_SHIM" ] || ! [ -x "$SOLC_SHIM" ] \
    || ! grep -q 'plimsoll-solc-shim v1' "$SOLC_SHIM" || ! [ -f "$shim_fallback" ] \
    || ! [ -d "$(dirname "$(dirname "$shim_fallback")")/node_modules/solc" ]; then
  log "installing solc stand-in at $SOLC_SHIM"
  mkdir -p "$SOLCX_DIR"
  rm -f "$SOLC_SHIM"
  printf '%s' "$shim_text" >"$SOLC_SHIM"
  chmod +x "$SOLC_SHIM"
fi
chmod +x tools/solc.js
# Also as `solc` in .tools/bin (on PATH in the Makefile): py-solc-x's default compiler is
# `which solc` (without it, bare solcx calls need set_solc_version("0.8.28")); slither too.
mkdir -p .tools/bin
[ "$(readlink .tools/bin/solc 2>/dev/null)" = "../../tools/solc.js" ] || ln -sfn ../../tools/solc.js .tools/bin/solc
# Warm the cached version line (first --version loads the compiler once, later ones are instant).
tools/solc.js --version >/dev/null

# --- 5. brownie networks -----------------------------------------------------------------------
BROWNIE_NET="$HOME/.brownie/network-config.yaml"
net_key="$(hash_of tools/brownie_networks.py)-$BROWNIE_NET"
if [ -f "$BROWNIE_NET" ] && stamp_ok brownie-net "$net_key"; then
  :
else
  log "checking brownie networks in $BROWNIE_NET"
  .venv/bin/python tools/brownie_networks.py "$BROWNIE_NET"
  stamp_write brownie-net "$net_key"
fi

# --- 6. wallet app bundle and the browser its tests drive -----------------------------------------
app_key="$(hash_of plimsoll/app/web/*.js package-lock.json)"
if [ -f plimsoll/app/static/app.js ] && stamp_ok app-bundle "$app_key"; then
  :
else
  log "bundling the wallet app (esbuild)"
  node_modules/.bin/esbuild plimsoll/app/web/main.js --bundle --minify --format=iife \
    --target=es2020 --log-level=warning --outfile=plimsoll/app/static/app.js
  stamp_write app-bundle "$app_key"
fi
CHROMIUM="${PLIMSOLL_CHROMIUM:-/usr/bin/chromium}"
if ! [ -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium for the browser tests (apt-get install -y chromium)"
    { apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
      || { log "apt-get install chromium failed: install Debian's chromium for tests/app"; exit 1; }
  else
    log "tests/app need a browser: run \`sudo apt-get install -y chromium\` (or set PLIMSOLL_CHROMIUM)"
  fi
fi

log "ok: solc $SOLC_VERSION, $(node_modules/.bin/anvil --version | head -1), $(.venv/bin/python --version)"
