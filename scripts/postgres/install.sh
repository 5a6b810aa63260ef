#!/usr/bin/env bash
# Install Debian's PostgreSQL server (for the Optuna tests marked `postgres`, and for laptops). Idempotent: a
# no-op when a server binary is already installed. Needs root (CI runs as root) and the Debian package mirror.
# Only the packages: no cluster is created and nothing is started (Debian's postinst does that with systemd or
# pg_ctlcluster; scripts/postgres/start.sh runs its own server with initdb + pg_ctl instead).
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
mkdir -p /etc/postgresql-common
# Debian's postinst would create and start a "main" cluster; we want only the binaries.
grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf \
  || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
