#!/usr/bin/env bash
# Install aws-sam-cli into its own virtual environment (/tmp/samenv by default), if missing.
# sam conflicts with the project's own dependencies, so it never goes into .venv. The Lambda
# tests use two things from it: `sam validate --lint` (tests/lambda/test_template.py) and the
# Runtime Interface Emulator binary it ships under samcli/local/rapid/ (tests/lambda/test_rie.py).
# Idempotent; fast when already installed.
set -euo pipefail
SAMENV="${SAMENV:-/tmp/samenv}"
if [ -x "$SAMENV/bin/sam" ] && compgen -G "$SAMENV/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-*" >/dev/null; then
  exit 0
fi
python3 -m venv "$SAMENV"
"$SAMENV/bin/pip" install -q --upgrade pip
"$SAMENV/bin/pip" install -q aws-sam-cli
"$SAMENV/bin/sam" --version
