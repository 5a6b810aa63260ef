#!/usr/bin/env bash
# Install what the code sandbox and its tests (marked `sandbox`) need from Debian: bubblewrap (the namespaces) and
# libseccomp2 (compiles the seccomp filter; the pyseccomp binding is a pip dependency). The per-sandbox cgroup
# needs no package, only a writable cgroup v2 or v1 memory+pids hierarchy (CI runs as root).
# Idempotent: a no-op when both are installed. Needs root (CI runs as root) and the Debian mirror.
set -euo pipefail
if command -v bwrap >/dev/null && ldconfig -p | grep -q 'libseccomp\.so\.2'; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap libseccomp2 >/dev/null
