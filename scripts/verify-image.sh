#!/usr/bin/env bash
# Proves the Dockerfile on a machine with no Docker engine and no image registry (this project's CI machine):
#   1. makes a local base image from this machine's Node (node, npm, a shell, their libraries);
#   2. builds the Dockerfile on it with podman --isolation=chroot (NODE_IMAGE build argument);
#   3. mounts the built image's filesystem and runs, from the image's own config (Env, WorkingDir, User),
#      its CMD without DATABASE_URL (one line, exit 1: the image has no embedded server), then the
#      migrate step and its CMD against the local PostgreSQL, until /readyz answers 200;
#      then its HEALTHCHECK command, then SIGTERM and a clean exit.
# Slow (a full npm ci inside the build); not part of CI. Needs root. Usage: bash scripts/verify-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BASE_IMAGE=localhost/webhook-outbox-base:node-local
IMAGE=localhost/webhook-outbox:verify
PORT="${VERIFY_PORT:-38123}"
DB_NAME="wo_verify_$$"

log() { printf '\n== %s\n' "$*"; }

if ! command -v podman >/dev/null; then
  log "installing podman (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi

work=$(mktemp -d)
container=""
mnt=""
server_pid=""
cleanup() {
  set +e
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  if [ -n "$mnt" ]; then
    umount "$mnt/dev" "$mnt/proc" 2>/dev/null
    podman unmount "$container" >/dev/null 2>&1
  fi
  [ -n "$container" ] && podman rm -f "$container" >/dev/null 2>&1
  psql -q "$PG_ADMIN_URL" -c "drop database if exists $DB_NAME with (force)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

log "1. local base image from this machine's Node ($(node --version))"
if podman image exists "$BASE_IMAGE" && [ -z "${REBUILD_BASE:-}" ]; then
  echo "reusing $BASE_IMAGE (REBUILD_BASE=1 makes it anew)"
else
root="$work/rootfs"
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$root"/{bin,usr/bin,usr/lib,etc/ssl/certs,tmp,proc,dev,root,usr/etc}
chmod 1777 "$root/tmp"
copy_with_libs() {
  for file in "$@"; do
    cp -L --parents "$file" "$root"
    ldd "$file" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do cp -L --parents "$lib" "$root"; done
  done
}
copy_with_libs "$node_bin" /bin/sh /bin/dash /bin/mkdir /bin/chown /bin/ls /usr/bin/env
[ "$node_bin" = /usr/bin/node ] || ln -s "$node_bin" "$root/usr/bin/node"
mkdir -p "$root$npm_dir" && cp -a "$npm_dir/." "$root$npm_dir/"
ln -sf "$npm_dir/bin/npm-cli.js" "$root/usr/bin/npm"
ln -sf "$npm_dir/bin/npx-cli.js" "$root/usr/bin/npx"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# npm here reaches its registry through this CA bundle; so does the image's build stage.
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$root/usr/etc/npmrc"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
tar -C "$root" -cf "$work/rootfs.tar" .
podman import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: $(du -sh "$work/rootfs.tar" | cut -f1)"
fi

log "2. podman build --isolation=chroot --build-arg NODE_IMAGE=$BASE_IMAGE"
podman build --isolation=chroot --format docker --network host \
  --build-arg NODE_IMAGE="$BASE_IMAGE" -t "$IMAGE" .

inspect=$(podman image inspect "$IMAGE")
config=$(node -e 'process.stdout.write(JSON.stringify(JSON.parse(process.argv[1])[0].Config))' "$inspect")
field() { node -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]] ?? ""))' "$config" "$1"; }
user=$(field User)
workdir=$(field WorkingDir)
mapfile -t cmd < <(node -e 'for (const a of JSON.parse(process.argv[1]).Cmd) console.log(a)' "$config")
mapfile -t image_env < <(node -e 'for (const e of JSON.parse(process.argv[1]).Env ?? []) console.log(e)' "$config")
mapfile -t healthcheck < <(node -e 'const i = JSON.parse(process.argv[1])[0]; for (const a of ((i.Healthcheck ?? i.Config.Healthcheck)?.Test ?? []).slice(1)) console.log(a)' "$inspect")
echo "image config: User=$user WorkingDir=$workdir"
echo "  CMD: ${cmd[*]}"
echo "  HEALTHCHECK: ${healthcheck[*]}"
[ -n "$user" ] && [ "$user" != root ] && [ "${user%%:*}" != 0 ] || { echo "the image runs as root" >&2; exit 1; }
[ ${#healthcheck[@]} -gt 0 ] || { echo "the image has no HEALTHCHECK" >&2; exit 1; }

log "3. mount the image's filesystem; run its migrate step and CMD against the local PostgreSQL"
container=$(podman create "$IMAGE")
mnt=$(podman mount "$container")
mount --bind /dev "$mnt/dev"
mount -t proc proc "$mnt/proc"
psql -q "$PG_ADMIN_URL" -c "create database $DB_NAME"
database_url="${PG_ADMIN_URL%/*}/$DB_NAME"
# In the image: its user, its working directory, its environment, plus what an operator passes.
# (An array, not a function, so that `… &` below execs it and $! is the service's own pid.)
in_image=(chroot --userspec="$user" "$mnt" /usr/bin/env -i "${image_env[@]}"
  DATABASE_URL="$database_url" PORT="$PORT" HOST=127.0.0.1 INTERNAL_API_TOKEN=verify-image-internal-token-0123456789
  /bin/sh -c 'cd "$0" && exec "$@"' "$workdir")
# The same without DATABASE_URL, as a `docker run` that forgot it.
no_database=(chroot --userspec="$user" "$mnt" /usr/bin/env -i "${image_env[@]}" PORT="$PORT" HOST=127.0.0.1
  /bin/sh -c 'cd "$0" && exec "$@"' "$workdir")
readyz() { node -e 'fetch(process.argv[1]).then(async (r) => { console.log(r.status, await r.text()); process.exit(r.status === 200 ? 0 : 1) }, (e) => { console.log(e.cause?.code ?? e.message); process.exit(1) })' "http://127.0.0.1:$PORT/readyz"; }

code=0; "${no_database[@]}" "${cmd[@]}" >"$work/serve-no-database.log" 2>&1 || code=$?
echo "without DATABASE_URL: exit $code: $(cat "$work/serve-no-database.log")"
[ "$code" = 1 ] && [ "$(wc -l <"$work/serve-no-database.log")" = 1 ] && grep -q REQUIRE_DATABASE_URL "$work/serve-no-database.log" ||
  { echo "expected exit 1 and one line naming DATABASE_URL"; exit 1; }

"${in_image[@]}" "${cmd[@]}" >"$work/serve-unmigrated.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do readyz >"$work/readyz" && break; grep -q 503 "$work/readyz" && break; sleep 0.2; done
echo "before migrations, /readyz: $(cat "$work/readyz")"
grep -q MIGRATIONS_PENDING "$work/readyz" || { echo "expected 503 MIGRATIONS_PENDING"; cat "$work/serve-unmigrated.log"; exit 1; }
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""

"${in_image[@]}" node dist/cli.js migrate
"${in_image[@]}" "${cmd[@]}" >"$work/serve.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 150); do
  if readyz >"$work/readyz"; then ready=yes; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
echo "after migrations, /readyz: $(cat "$work/readyz")"
[ -n "$ready" ] || { echo "the image's CMD never became ready; its output:"; cat "$work/serve.log"; exit 1; }
"${in_image[@]}" "${healthcheck[@]}" && echo "HEALTHCHECK command: exit 0"
echo "serving process (uid, command): $(ps -o uid=,args= -p "$server_pid" || echo "gone")"

kill -TERM "$server_pid"
code=0; wait "$server_pid" || code=$?
server_pid=""
echo "SIGTERM: exit code $code; the service's last log lines:"
tail -n 4 "$work/serve.log"
[ "$code" = 0 ] || exit 1
log "image verified: built on a local base, its CMD served from its own filesystem as user $user and became ready"
