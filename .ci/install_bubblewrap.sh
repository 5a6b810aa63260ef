#!/usr/bin/env bash
# Install bubblewrap (Debian's `bubblewrap` package) for the code sandbox and its tests (marked `sandbox`).
# Idempotent: a no-op when bwrap is already installed. Needs root (CI runs as root) and the Debian mirror.
set -euo pipefail
if command -v bwrap >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
