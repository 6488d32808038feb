#!/bin/sh
# The passwords of the compose stack, made on the first `docker compose up`
# (compose.yaml, service `secrets`) in the volume mounted at $SECRETS_DIR, so
# that no password is written in any file of the repository:
#
#   postgres_password       PostgreSQL's superuser password   (POSTGRES_PASSWORD_FILE)
#   pgpass                  the same for libpq in ingest and processor (PGPASSFILE)
#   grafana_admin_password  Grafana's admin password         (GF_SECURITY_ADMIN_PASSWORD__FILE)
#
# Each is random unless POSTGRES_PASSWORD / GRAFANA_ADMIN_PASSWORD is set on
# the first run. Later runs keep the passwords (PostgreSQL and Grafana read
# them only when they create their data) and only rewrite ownership and modes:
# each file belongs to the uid of the one container that reads it, mode 0400
# (pgpass 0600, which libpq requires).
set -eu
dir=${SECRETS_DIR:-/run/pipeline-secrets}
postgres_uid=${POSTGRES_UID:?}
pipeline_uid=${PIPELINE_UID:?}
grafana_uid=${GRAFANA_UID:?}
umask 077

random_password() {
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

# write FILE UID MODE VALUE: atomically, without a trailing newline.
write() {
  printf '%s' "$4" >"$dir/.$1.tmp"
  chown "$2:$2" "$dir/.$1.tmp"
  chmod "$3" "$dir/.$1.tmp"
  mv -f "$dir/.$1.tmp" "$dir/$1"
}

# keep_or_new FILE FALLBACK: the file's content if it exists, else FALLBACK,
# else a random password.
keep_or_new() {
  if [ -s "$dir/$1" ]; then cat "$dir/$1"
  elif [ -n "$2" ]; then printf '%s' "$2"
  else random_password
  fi
}

mkdir -p "$dir"
chmod 0755 "$dir"
made=no
[ -s "$dir/postgres_password" ] && [ -s "$dir/grafana_admin_password" ] || made=yes
postgres_password=$(keep_or_new postgres_password "${POSTGRES_PASSWORD:-}")
grafana_password=$(keep_or_new grafana_admin_password "${GRAFANA_ADMIN_PASSWORD:-}")

write postgres_password "$postgres_uid" 0400 "$postgres_password"
write grafana_admin_password "$grafana_uid" 0400 "$grafana_password"
# pgpass: host:port:database:user:password, with ':' and '\' escaped.
escaped=$(printf '%s' "$postgres_password" | sed 's/[\\:]/\\&/g')
write pgpass "$pipeline_uid" 0600 "*:*:*:postgres:$escaped
"

if [ "$made" = yes ]; then
  echo "secrets: passwords created in the volume (read Grafana's with:"
  echo "  docker compose exec grafana cat $dir/grafana_admin_password)"
else
  echo "secrets: passwords kept"
fi
