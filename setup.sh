#!/usr/bin/env bash
# Install dmask on Debian: system GL/EGL/Xvfb packages, .venv with the package, face models.
#
#   ./setup.sh          everything needed to run `dmask`
#   ./setup.sh --test   the same plus the test dependencies
#
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  "") extras="[eval]" ;;
  --test) extras="[test]" ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

log() { echo "setup: $*" >&2; }

# A Python the package supports (pyproject: >=3.10,<3.14).
find_python() {
  local candidate
  for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# --- Debian packages: EGL/GL (offscreen rendering on Mesa), Xvfb (preview window in tests)
packages=(libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri xvfb)
python=$(find_python) || { log "no Python 3.10-3.13 found (python3 --version: $(python3 --version 2>&1))"; exit 1; }
# Chromium for the end-to-end test of `dmask serve` (driven by Playwright; never `playwright install`).
if [[ -n $extras ]]; then packages+=(chromium); fi
# coturn, which the TURN test starts on loopback (Debian does not start its service).
if [[ $extras == "[test]" ]]; then packages+=(coturn); fi
# Debian's own Python needs python3-venv for `python -m venv`.
"$python" -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)

missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    log "need root or sudo to install: ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- .venv with the package (editable) --------------------------------------------------
if ! .venv/bin/python -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
  log "creating .venv with $("$python" --version)"
  rm -rf .venv  # absent, or left by a Python that is gone or unsupported
  "$python" -m venv .venv
fi
# Reinstall only when pyproject.toml changed, or the test extras are wanted and missing.
stamp=.venv/.dmask-installed  # "<sha256 of pyproject.toml> <extras>" of the last install
installed=$(cat "$stamp" 2>/dev/null || true)
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ $installed != "$hash [test]" && $installed != "$hash $extras" ]] || ! .venv/bin/python -c 'import dmask_rt' 2>/dev/null; then
  log "installing the package into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
  echo "$hash $extras" > "$stamp"
fi

# --- face models (skipped when present and verified) ------------------------------------
.venv/bin/dmask setup
