#!/usr/bin/env bash
# Start a PostgreSQL server on localhost for Optuna's RDB storage (no systemd): initdb + pg_ctl as the
# `postgres` user (as the current user when not root). One database and one user WITH A PASSWORD, so the tests
# exercise password authentication (scram-sha-256 over TCP) and check that the password never leaks.
#   usage: scripts/postgres/start.sh        stop with: scripts/postgres/stop.sh
# State in $SSPO_PG_STATE (default /tmp/sspo-postgres): data/, the log, and `url` (mode 600): the storage URL
#   postgresql://sspo:<password>@127.0.0.1:<port>/sspo_optuna
# which the tests read (or set SSPO_TEST_POSTGRES_URL yourself to use another server). The password is random,
# made once per state directory. Port: $SSPO_PG_PORT (default 54329, away from a system server on 5432).
set -euo pipefail
STATE=${SSPO_PG_STATE:-/tmp/sspo-postgres}
PORT=${SSPO_PG_PORT:-54329}
DB=sspo_optuna
ROLE=sspo
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z $PGBIN ]]; then
  echo "start.sh: no PostgreSQL server found under /usr/lib/postgresql (run scripts/postgres/install.sh)" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]]; then as_pg() { runuser -u postgres -- "$@"; }; OWNER=postgres; else as_pg() { "$@"; }; OWNER=$(id -un); fi

mkdir -p "$STATE/run"
chown "$OWNER" "$STATE/run" && chmod 0700 "$STATE/run"
if [[ ! -s $STATE/password ]]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/password")
fi
PASSWORD=$(cat "$STATE/password")

if [[ ! -s $STATE/data/PG_VERSION ]]; then
  mkdir -p "$STATE/data" && chown "$OWNER" "$STATE/data" && chmod 0700 "$STATE/data"
  # local (socket) connections: peer (the postgres user administers); TCP: password only
  as_pg "$PGBIN/initdb" -D "$STATE/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --no-instructions >"$STATE/initdb.log" 2>&1 \
    || { echo "start.sh: initdb failed:" >&2; cat "$STATE/initdb.log" >&2; exit 1; }
fi
touch "$STATE/postgres.log" && chown "$OWNER" "$STATE/postgres.log"
if ! as_pg "$PGBIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$STATE/data" -l "$STATE/postgres.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$STATE/run -c max_connections=200" \
    >/dev/null || { echo "start.sh: PostgreSQL did not start:" >&2; tail -n 20 "$STATE/postgres.log" >&2; exit 1; }
fi
psql_admin() { as_pg "$PGBIN/psql" -h "$STATE/run" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
# the role and database (idempotent); the password is (re)set from $STATE/password, passed on stdin, not argv
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'") ]]; then
  psql_admin -c "CREATE ROLE $ROLE LOGIN"
fi
printf "ALTER ROLE %s PASSWORD '%s';\n" "$ROLE" "$PASSWORD" | psql_admin -f - >/dev/null
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$DB'") ]]; then
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE"
fi
(umask 077; echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB" > "$STATE/url")
PGPASSWORD=$PASSWORD "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -d "$DB" -U "$ROLE" >/dev/null \
  || { echo "start.sh: server is not accepting connections on 127.0.0.1:$PORT" >&2; exit 1; }
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, database $DB, user $ROLE (URL in $STATE/url)"
