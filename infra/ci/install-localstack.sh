#!/usr/bin/env bash
# Install LocalStack's S3 (PyPI localstack-core, no Docker) into its own virtual environment on
# Python 3.13 (/tmp/localstack-venv by default), if missing. Prints the venv path on success.
#
# Why these pins (issue 19): localstack-core 2026.3.0 fails on 3.11 (SyntaxError) and 3.12
# (`cannot import name 'deprecated' from 'warnings'`), so it gets a 3.13 (PYTHON313, python3.13
# on PATH, or pyenv's); cbor2 6 breaks its import; pyopenssl >= 24.3 needs a newer cryptography
# than its other pins allow; service-identity is imported by its TLS setup but not declared.
# Idempotent; exits non-zero (and says why) when it cannot install: .ci/run then skips the tier.
set -euo pipefail
VENV="${LOCALSTACK_VENV:-/tmp/localstack-venv}"
PINS=("localstack-core[base-runtime]==2026.3.0" "cbor2<6" "pyopenssl<24.3" "cryptography<44" service-identity)
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import localstack.runtime.main, rolo" 2>/dev/null; then
  echo "$VENV"; exit 0
fi
PY="${PYTHON313:-}"
if [ -z "$PY" ]; then
  for cand in "$(command -v python3.13 || true)" "$(pyenv prefix 3.13 2>/dev/null)/bin/python3.13"; do
    if [ -n "$cand" ] && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
  echo "install-localstack: no Python 3.13 (set PYTHON313, or pyenv install 3.13)" >&2; exit 1
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# PIP_CONSTRAINT: the machine's global constraints are for the project's venv, not this one.
# ~50 s from PyPI on two cores; the last line of stderr is the reason .ci/run gives for skipping.
if ! PIP_CONSTRAINT= "$VENV/bin/pip" install -q "${PINS[@]}" >&2; then
  rm -rf "$VENV"; echo "install-localstack: pip could not install ${PINS[0]} (is PyPI reachable?)" >&2; exit 1
fi
"$VENV/bin/python" -c "import localstack.runtime.main" >&2
echo "$VENV"
