#!/usr/bin/env bash
# Stop the PostgreSQL server started by scripts/postgres/start.sh (pg_ctl stop on its data directory; the data
# stay, so the next start.sh is quick). Safe to run twice. Remove $SSPO_PG_STATE to start from scratch.
set -uo pipefail
STATE=${SSPO_PG_STATE:-/tmp/sspo-postgres}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z $PGBIN || ! -s $STATE/data/PG_VERSION ]]; then
  echo "stop.sh: no PostgreSQL started by start.sh (state $STATE)"; exit 0
fi
if [[ $(id -u) -eq 0 ]]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
if as_pg "$PGBIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null
fi
