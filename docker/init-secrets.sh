#!/usr/bin/env bash
# Generates the compose stack's secrets into docker/.env (or the file given as $1), which
# `docker compose -f docker/compose.yaml` reads: the MinIO root password (also the workers'
# S3 key), the PostgreSQL password and the Prefect API's basic auth string. Nothing ships
# with a default: compose refuses to start until this has run.
#
# The file is created owner-only (0600). A value already in it is kept, so rerunning adds
# what is missing and never changes a password the volumes were initialised with.
set -euo pipefail
umask 077
out="${1:-$(cd "$(dirname "$0")" && pwd)/.env}"

random() {  # 40 letters and digits (~238 bits): safe in URLs (the PostgreSQL DSN) and shells
  local value
  value="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom 2>/dev/null | head -c 40 || true)"
  [ "${#value}" -eq 40 ] || { echo "init-secrets: could not read /dev/urandom" >&2; exit 1; }
  printf '%s' "$value"
}

touch "$out"
chmod 600 "$out"
add() {  # add NAME=VALUE unless NAME is already set in the file
  grep -q "^$1=" "$out" || printf '%s=%s\n' "$1" "$2" >>"$out"
}
add MINIO_ROOT_USER t2g-admin
add MINIO_ROOT_PASSWORD "$(random)"
add POSTGRES_PASSWORD "$(random)"
add T2G_PREFECT_AUTH "t2g:$(random)"
echo "secrets in $out (mode 600); clients: export PREFECT_API_AUTH_STRING=\"\$(sed -n 's/^T2G_PREFECT_AUTH=//p' $out)\""
