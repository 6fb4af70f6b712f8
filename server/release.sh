#!/bin/bash
# shellcheck disable=SC2153  # the upper-case names come from settings.env
# Releases the app on this server, as root:
#   release [REF] | release --rollback [ID] | release --list | release --run -- CMD [ARG...]
#   | release --refresh-secrets
# REF is what the release pointer holds: a git ref (tag, branch or commit SHA) of appRepo, or
# SHA256[@S3-VERSION] of the appSource bundle. It defaults to the SSM parameter REF_PARAMETER on
# EC2, else to APP_REF.
#
# 1. fetch into a new directory $RELEASES/<id>; its venv is the one of its requirements' hash
#    (built once, shared by every release with the same requirements); run its build commands,
#    its migrations (once across the fleet with a database: migrate-once) and pre-start hooks;
# 2. start it on a private socket and GET $HEALTH_PATH: a broken release never takes traffic;
# 3. switch $CURRENT to it atomically, restart gunicorn with no failed request (see
#    restart_app), GET $HEALTH_PATH through nginx; on failure switch back;
# 4. keep the newest $RELEASES_KEPT releases and the venvs they use; each records the pointer
#    it was released from in <id>/.ref (a git release: its commit SHA).
# A static site (KIND=static) has no app process: its venv only for a build with the
# requirements file, the candidate check is that $HEALTH_PATH is a file of the new release's web
# root, and the switch restarts nothing (nginx follows $CURRENT per request).
# appRuntime docker (APP_SOURCE=image): REF is an image by digest; fetch is a pull, the hooks
# run inside it and the candidate is the idle blue/green slot: see release-container.
# Releasing what already serves is a no-op; a kept release is reused (a git commit SHA of one
# fetches nothing). Last line on success: "release: serving REF (ID) as DIR"; on failure one
# paragraph "release: FAILED: ..." on stderr and exit 1 (2: usage).
# --rollback [ID]: releases the kept release ID again, by the steps above (its pointer, its
# reused directory: offline), under the same lock; ID defaults to the newest released one that
# is not current. None: exit 1; an ID that is not kept: exit 2, naming the kept ones.
# --list: the kept releases, the newest released first, one JSON object a line:
#   {"id": "<dir name>", "ref": "<pointer>", "released": "<ISO 8601 UTC>", "current": bool}
# --run -- CMD [ARG...]: CMD once as the app runs (its user, the serving release's app
# directory, its venv's bin first on PATH, app.env and the secrets, PYTHONUNBUFFERED=1; a
# container: podman run --rm of the live slot's image with the slots' flags, no stdin); its
# output passes through and its exit code is this one's. Not locked: it never blocks a release.
# Nothing released: exit 1; a static site: exit 2.
# --refresh-secrets (the secrets-refresh timer's): fetch the app's secrets again, and only when
# they changed replace secrets.env and restart the app as a release does, under the same lock.
# Never `set -x`: the hooks and the candidate run with the app's secrets in their environment.
set -euo pipefail
umask 022
export LC_ALL=C
# shellcheck source=/dev/null
. "$(dirname "$(readlink -f "$0")")/settings.env"

user=$APP
unit=$UNIT
home=$HOME_DIR
releases=$RELEASES
current=$CURRENT
lib=$LIB
etc=$ETC
state=$STATE
redact=(--redact "$SECRETS_ENV")
keep=$RELEASES_KEPT
# Local runs share the developer's venv; servers build one per release, with uv.
venv_shared=$VENV_SHARED
uv=("$UV" --config-file "$etc/uv.toml")
health_path=$HEALTH_PATH
health_url=$HEALTH_URL
static=
[ "$KIND" != static ] || static=1
container=
live='' candidate=''  # a container's slots: the one serving, the new release's (check_container)
if [ "$APP_SOURCE" = image ]; then
  container=1
  # shellcheck source=/dev/null
  . "$lib/release-container"
fi

say() { echo "release: $*"; }
fail() {  # MESSAGE [CODE]: one paragraph on stderr, credentials in URLs masked
  printf 'release: FAILED: %s\n' "$(tr '\n' ' ' <<<"$1" | sed -E 's#//[^/@ ]+@#//***@#g; s/ +$//')" >&2
  exit "${2:-1}"
}
excerpt() { tail -n "${2:-5}" "$1" 2>/dev/null | "$lib/probe" redact "${redact[@]}" | tr '\n' ' '; }
as_app() { runuser -u "$user" -- env HOME="$home" "$@"; }
app_env() {  # the app's environment as systemd gives it (call in a subshell)
  set -a
  # shellcheck source=/dev/null
  . "$etc/app.env"
  if [ -n "$SECRETS" ]; then
    # shellcheck source=/dev/null
    . "$SECRETS_ENV"
  fi
  set +a
}

started=$EPOCHREALTIME
phases=()
phase() {  # NAME: the time since the last phase, for the summary line
  local now=$EPOCHREALTIME
  phases+=("$1 $(awk -v a="$started" -v b="$now" 'BEGIN { printf "%.1fs", b - a }')")
  started=$now
}

restart_app() {
  # Zero downtime without HUP. `systemctl reload` (HUP) would re-fork workers from the old
  # master, whose interpreter and sys.path are the old release's venv: the new release's new
  # dependencies would not import. So gunicorn is restarted, from the venv `current` now
  # points at, and nothing is lost because the listening socket belongs to $unit.socket, not
  # to gunicorn: the old master stops accepting and finishes its requests (graceful stop), new
  # connections wait in the socket's backlog meanwhile, and the new master takes the same
  # socket from systemd and accepts them. nginx sees a slower answer, never an error.
  [ -z "$static" ] || return 0  # nginx serves the files `current` points at: nothing to restart
  if [ -n "$container" ]; then
    container_restart
    return
  fi
  systemctl start "$unit.socket"
  if systemctl is-active --quiet "$unit.service"; then
    systemctl restart "$unit.service"
  else
    systemctl start "$unit.service"
  fi
}

locked=
take_lock() {  # once per run (--rollback takes it before it chooses)
  [ -z "$locked" ] || return 0
  locked=1
  install -d -m 0755 "$state"
  exec 9>>"$state/release.lock"
  flock --wait 900 9 || fail "another release still runs (it holds $state/release.lock)"
}

refresh_secrets() {  # a changed secrets.env (a rotated password) restarts the app; else nothing
  [ -n "$SECRETS" ] || fail "this app has no secrets to refresh" 2
  take_lock
  if [ ! -e "$SECRETS_ENV" ]; then
    say "no secrets fetched yet ($unit-secrets has not run): nothing to refresh"
    return 0
  fi
  local new="$SECRETS_ENV.new" out
  out=$(/usr/bin/python3 "$lib/ssm-get" "$etc/secrets.json" "$new" 2>&1) || {
    rm -f "$new"
    fail "could not fetch the app's secrets again: $(tail -n 3 <<<"$out")"
  }
  if cmp -s "$new" "$SECRETS_ENV"; then
    rm -f "$new"
    say "secrets unchanged: nothing restarted"
    return 0
  fi
  mv -f "$new" "$SECRETS_ENV"
  if [ -n "$static" ] || [ ! -e "$current" ]; then
    say "secrets changed: $SECRETS_ENV replaced (no app process serves: nothing to restart)"
    return 0
  fi
  # started if it is down: systemd gives up restarting an app that failed to start with the
  # old password (its start limit), and this is what brings it back
  say "secrets changed: restarting $unit with them"
  restart_app || fail "the secrets changed but systemctl could not restart $unit (journalctl -u $unit)"
  answer=$("$lib/probe" get "$health_url" --wait 60 "${redact[@]}") \
    || fail "the secrets changed and $unit restarted with them, but $health_path does not answer through nginx: $answer"
  say "secrets changed: $unit restarted with them and answers $health_path"
}

start_secrets() {  # fetched once per boot (a no-op if they were)
  [ -n "$SECRETS" ] || return 0
  systemctl start "$unit-secrets.service" \
    || fail "could not fetch the app's secrets from SSM (journalctl -u $unit-secrets)"
}

serving_id() { local link; link=$(readlink "$current" 2>/dev/null) || true; echo "${link##*/}"; }

released_newest_first() {  # "EPOCH DIR" of each kept release (not the failed trees)
  [ -d "$releases" ] || return 0
  find "$releases" -mindepth 2 -maxdepth 2 -name .released -not -path "$releases/.*" \
    -printf '%T@ %h\n' 2>/dev/null | sort -rn
}

release_pointer() {  # DIR: what it was released from (older releases: what their files hold)
  local file
  for file in .ref image .complete; do
    if [ -s "$1/$file" ]; then
      head -n 1 "$1/$file"
      return 0
    fi
  done
}

list_releases() {  # --list: JSON lines, built by python's json (never by hand)
  local serving epoch path
  serving=$(serving_id)
  released_newest_first | while read -r epoch path; do
    printf '%s\t%s\t%s\t%s\n' "${path##*/}" "$(release_pointer "$path")" "${epoch%.*}" \
      "$([ "${path##*/}" != "$serving" ] || echo 1)"
  done | /usr/bin/python3 -c '
import json, sys, time
for line in sys.stdin:
    rid, ref, epoch, current = line.rstrip("\n").split("\t")
    released = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
    print(json.dumps({"id": rid, "ref": ref, "released": released, "current": current == "1"}))'
}

rollback_pointer() {  # [ID]: the pointer of the kept release to go back to (under the lock)
  local serving kept=() epoch path target=${1:-}
  serving=$(serving_id)
  while read -r epoch path; do kept+=("${path##*/}"); done < <(released_newest_first)
  if [ -n "$target" ]; then
    printf '%s\n' "${kept[@]}" | grep -qxF -- "$target" || fail "'$target' is not a kept \
release: expected one of ${kept[*]:-(none: nothing is released yet)}" 2
  else
    for path in "${kept[@]}"; do
      if [ "$path" != "$serving" ]; then target=$path; break; fi
    done
    [ -n "$serving" ] || fail "no release to roll back to (nothing is released yet)"
    [ -n "$target" ] || fail "no release to roll back to (only $serving is kept)"
  fi
  release_pointer "$releases/$target"
}

run_command() {  # CMD [ARG...]: --run, in the serving release as the app runs (exec: its code)
  [ -z "$static" ] || fail "a static site runs no commands" 2
  local serving app_dir venv argv
  serving=$(readlink -e "$current") || fail "nothing is released yet"
  start_secrets
  [ -z "$container" ] || container_exec "$@"
  app_dir="$serving/src${APP_PATH:+/$APP_PATH}"
  venv=${venv_shared:-$(readlink -f "$serving/venv")}
  cd "$app_dir"
  argv=(setpriv --reuid "$user" --regid "$user" --init-groups env HOME="$home"
        PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PYTHONUNBUFFERED=1 "$@")
  app_env
  exec "${argv[@]}"
}

usage="usage: release [REF] | release --rollback [ID] | release --list"
usage+=" | release --run -- CMD [ARG...] | release --refresh-secrets"
case "${1:-}:$#" in
  --list:1) list_releases; exit 0 ;;
  --run:*)
    if [ "${2:-}" != -- ] || [ $# -lt 3 ]; then fail "$usage" 2; fi
    shift 2
    run_command "$@" ;;
  --rollback:1 | --rollback:2)
    take_lock
    pointer=$(rollback_pointer "${2:-}") || exit
    set -- "$pointer" ;;
esac
if [ "${1:-}" = --refresh-secrets ] && [ $# -eq 1 ]; then
  refresh_secrets
  exit 0
fi
# The container slots' unit and setup call these (see release-container).
if [ -n "$container" ]; then
  case "${1:-}:$#" in
    --container-prepare:2) container_prepare "$2"; exit ;;
    --container-run:2) container_run "$2" ;;
    --container-hook:3) container_hook "$2" "$3"; exit ;;
    --container-init:1) container_init; exit ;;
    --container-restart:1) take_lock; container_restart; exit ;;
  esac
fi
[ $# -le 1 ] || fail "$usage" 2
ref=${1:-}
if [ -z "$ref" ] && [ -n "$REF_PARAMETER" ]; then
  # On EC2 the pointer lives in SSM, so new code never changes the user-data.
  ref=$(/usr/bin/python3 "$lib/ssm-get" --get "$REF_PARAMETER") \
    || fail "could not read the release pointer from the SSM parameter $REF_PARAMETER"
fi
ref=${ref:-$APP_REF}
if [ "$APP_SOURCE" = bundle ]; then
  [[ $ref =~ ^[0-9a-f]{64}(@[A-Za-z0-9._-]+)?$ ]] \
    || fail "'$ref' is not a bundle's release: expected SHA256[@S3-VERSION-ID]" 2
elif [ -n "$container" ]; then
  [[ $ref =~ ^[a-z0-9][a-z0-9.-]*(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$ ]] \
    || fail "'$ref' is not an image by digest: expected HOST[:PORT]/NAME@sha256:<64 hex>" 2
# The program and the rollout check refs with components.gitref; this guards a hand-typed one.
elif [[ -z $ref || $ref == -* || $ref == *..* || $ref =~ [[:space:][:cntrl:]] ]]; then
  fail "'$ref' is not a git ref: expected a tag, branch or commit SHA" 2
fi

take_lock

if [ "$APP_SOURCE" = bundle ]; then
  pointer=$ref
  sha=${ref%%@*}
  id="bundle-${sha:0:12}"
  ref="bundle"
elif [ -n "$container" ]; then
  pointer=$ref
  sha=${ref##*@sha256:}
  id="image-${sha:0:12}"
  ref=${ref%@*}
else
  if [[ $ref =~ ^[0-9a-f]{40}$ ]] \
       && [ "$(cat "$releases/${ref:0:12}/.complete" 2>/dev/null)" = "$ref" ]; then
    sha=$ref  # a kept release's commit (a rollback): a commit never changes, nothing to fetch
  elif ! out=$(as_app "$lib/fetch-app" resolve "$ref" 2>&1); then
    fail "could not fetch $ref: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  else
    sha=$(tail -n 1 <<<"$out")
  fi
  pointer=$sha
  id=${sha:0:12}
fi
short=${sha:0:12}
dir="$releases/$id"
app_dir="$dir/src${APP_PATH:+/$APP_PATH}"
web_root="$app_dir${WEB_DIR:+/$WEB_DIR}"
previous=$(readlink "$current" 2>/dev/null || true)
previous=${previous##*/}

if [ "$previous" = "$id" ] && [ -e "$dir/.complete" ]; then
  say "$ref ($short) is already serving: nothing to do"
  say "serving $ref ($short) as $dir"
  exit 0
fi

abandon() {  # the new release never took traffic
  rm -rf "$releases"/.failed-*
  mv "$dir" "$releases/.failed-$id" 2>/dev/null || true
  if [ -n "$previous" ]; then
    fail "release $ref ($short): $1. Rolled back to $previous, which kept serving throughout (nothing was switched); the failed tree is $releases/.failed-$id"
  fi
  fail "release $ref ($short): $1. No previous release to fall back to; the failed tree is $releases/.failed-$id"
}

switch_to() {  # atomic: rename(2) of a new symlink over the old one
  ln -sfn "releases/$1" "$home/.current.new"
  mv -T "$home/.current.new" "$current"
}

build_venv() {  # VENV LOG: uv's venv with the requirements (+ its WSGI server) (.complete: whole)
  if [ -z "$venv_shared" ]; then
    rm -rf "$1"
    as_app "${uv[@]}" venv --quiet --python /usr/bin/python3 "$1" >"$2" 2>&1 \
      || abandon "uv venv failed: $(excerpt "$2")"
  fi
  # pyuwsgi: uWSGI as a binary wheel, its `uwsgi` command in the venv
  as_app "${uv[@]}" pip install --python "$1/bin/python" --compile-bytecode \
      --requirement "$app_dir/$APP_REQUIREMENTS" ${GUNICORN_VERSION:+"gunicorn==$GUNICORN_VERSION"} \
      ${UWSGI_VERSION:+"pyuwsgi==$UWSGI_VERSION"} >>"$2" 2>&1 \
    || abandon "installing the requirements failed: $(excerpt "$2")"
  [ -n "$venv_shared" ] || touch "$1/.complete"
}

release_venv() {  # $dir/venv: the venv of the release's requirements (shared by their hash)
  [ -f "$app_dir/$APP_REQUIREMENTS" ] \
    || abandon "it has no $APP_REQUIREMENTS${APP_PATH:+ in $APP_PATH}"
  if [ -n "$venv_shared" ]; then
    venv=$venv_shared
    build_venv "$venv" "$dir/.venv.log"
  elif key=$(/usr/bin/python3 "$lib/requirements-key" "$app_dir/$APP_REQUIREMENTS" \
               "$GUNICORN_VERSION" ${UWSGI_VERSION:+"pyuwsgi==$UWSGI_VERSION"} "$UV_INDEX" \
               2>"$dir/.venv.log"); then
    venv="$VENVS/$key"
    if [ -e "$venv/.complete" ]; then
      say "virtualenv $venv (the same requirements: reused)"
    else
      say "virtualenv $venv"
      build_venv "$venv" "$dir/.venv.log"
    fi
  else  # it installs files of the release itself (-e ., ./pkg): a venv of its own
    venv="$dir/venv"
    say "virtualenv $venv ($(excerpt "$dir/.venv.log" 1))"
    build_venv "$venv" "$dir/.venv.log"
  fi
  [ "$venv" = "$dir/venv" ] || ln -sfn "$venv" "$dir/venv"
}

start_secrets  # the build, the hooks and the candidate get them

install -d -o "$user" -g "$user" -m 0755 "$releases" "$VENVS"
install -d -o "$user" -g "$user" -m 0750 "$DATA_DIR"  # kept across releases: APP_DATA_DIR
if [ -e "$dir/.complete" ]; then
  say "$ref ($short) is still in $dir: reusing it"
  if [ -n "$container" ]; then  # its image too, unless someone removed it
    container_pull "$pointer" "$dir/.fetch.log" \
      || abandon "could not pull it again: $(excerpt "$dir/.fetch.log" 3)"
  fi
else
  rm -rf "$dir"
  install -d -o "$user" -g "$user" -m 0755 "$dir"
  if [ -n "$container" ]; then
    container_fetch
  elif [ "$APP_SOURCE" = bundle ]; then
    say "fetching bundle $short into $dir"
    as_app /usr/bin/python3 "$lib/fetch-bundle" "$pointer" "$dir/src" \
      >"$dir/.fetch.log" 2>&1 || abandon "could not fetch it: $(excerpt "$dir/.fetch.log" 3)"
  else
    say "fetching $ref ($short) into $dir"
    as_app "$lib/fetch-app" export "$sha" "$dir/src" >"$dir/.fetch.log" 2>&1 \
      || abandon "could not export $sha: $(excerpt "$dir/.fetch.log" 3)"
  fi
  phase fetch
  # A static site's build gets a venv when the release has the requirements file; else none.
  if [ -z "$static$container" ] || { [ -n "$BUILD" ] && [ -f "$app_dir/$APP_REQUIREMENTS" ]; }; then
    release_venv
    phase venv
  fi
  if [ -n "$BUILD" ]; then
    say "build commands"
    (app_env; exec runuser -u "$user" -- env HOME="$home" "$lib/build" "$dir") 9>&- \
        >"$dir/.build.log" 2>&1 \
      || abandon "a build command failed: $(excerpt "$dir/.build.log")"
    phase build
  fi
  echo "$sha" > "$dir/.complete"
fi
venv=${venv_shared:-$(readlink -f "$dir/venv")}

migrate=(runuser -u "$user" -- env HOME="$home" /usr/bin/python3 "$lib/migrate-once"
         --log "$dir/.migrate.log" "$id" "$lib/migrate" "$dir")
if [ -n "$container" ]; then
  container_env 2>"$dir/.env.log" \
    || abandon "its environment cannot be given to podman: $(excerpt "$dir/.env.log" 1)"
  # in the new image, through podman (root's): the same lock, the same marker table
  migrate=(/usr/bin/python3 "$lib/migrate-once" --log "$dir/.migrate.log" "$id"
           "$lib/release" --container-hook migrate "$pointer")
fi
if [ -n "$MIGRATE" ]; then
  # Once across the fleet with a database (its lock, its marker table); its own lines show
  # here (waiting for another server, skipped), the commands' output in .migrate.log.
  say "migrations"
  migrated=0
  (app_env; exec "${migrate[@]}") 9>&- </dev/null 2>&1 \
    | sed -u 's/^/release: /' || migrated=$?
  [ "$migrated" = 0 ] || abandon "a migration failed: $(excerpt "$dir/.migrate.log")"
  phase migrate
fi

# A container's run in its slot's unit before each start (the candidate's below, each boot).
if [ -n "$PRE_START" ] && [ -z "$container" ]; then
  say "pre-start hooks"
  (app_env; exec runuser -u "$user" -- env HOME="$home" "$lib/pre-start" "$dir") 9>&- \
      >"$dir/.hooks.log" 2>&1 \
    || abandon "a pre-start hook failed: $(excerpt "$dir/.hooks.log")"
  phase pre-start
fi

check_candidate() {  # the WSGI server on a private socket answers $health_path with 200
  candidate="$dir/.candidate.sock"
  rm -f "$candidate"
  local serve
  if [ "$APP_SERVER" = uwsgi ]; then
    # The unit's settings, speaking HTTP on a socket of its own (not systemd's: no LISTEN_FDS),
    # one worker, its log in a file of the release the app's user may append to.
    install -o "$user" -g "$user" -m 0640 /dev/null "$dir/.candidate.log"
    serve=("$venv/bin/uwsgi" --ini "$SERVER_CONFIG" --chdir "$app_dir" \
      --http-socket "$candidate" --processes 1 --logto "$dir/.candidate.log")
  else
    serve=("$venv/bin/gunicorn" --config "$SERVER_CONFIG" --chdir "$app_dir" \
      --bind "unix:$candidate" --workers 1 --no-control-socket --error-logfile -)
  fi
  # setpriv execs (runuser would fork): $! is the server's master, which the probe watches.
  (app_env; exec setpriv --reuid "$user" --regid "$user" --init-groups env HOME="$home" \
    "${serve[@]}") </dev/null >>"$dir/.candidate.log" 2>&1 9>&- &
  candidate_pid=$!
  checked=0
  answer=$("$lib/probe" get "http://localhost$health_path" --unix "$candidate" --wait 60 \
    --pid "$candidate_pid" "${redact[@]}") && checked=1
  kill -TERM "$candidate_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$candidate_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$candidate_pid" 2>/dev/null || true
  wait "$candidate_pid" 2>/dev/null || true
  rm -f "$candidate"
  if [ "$checked" != 1 ]; then
    # without uWSGI's own lines of its exit, which follow what the app said
    local log
    log=$(sed -E '/^(\*\*\* no app loaded|SIGINT\/SIGTERM received)/,$d' "$dir/.candidate.log")
    abandon "its health check failed before it took traffic: $answer; $APP_SERVER's log ends: $(excerpt <(echo "$log") 3)"
  fi
}

check_files() {  # a static site: $health_path is a file of the new release's web root
  local root file
  if ! root=$(readlink -e -- "$web_root") || [ ! -d "$root" ]; then
    abandon "its web root ${web_root#"$dir/src/"} is not a directory"
  fi
  file=$(readlink -e -- "$root$health_path") || file=
  [ ! -d "$file" ] || file=$(readlink -e -- "$file/index.html") || file=
  if [ ! -f "$file" ] || [[ $file != "$root"/* ]]; then
    abandon "its health check failed before it took traffic: no file of its web root ${web_root#"$dir/src/"} answers $health_path (a directory: its index.html)"
  fi
}

say "checking $health_path on $id before it takes traffic"
if [ -n "$static" ]; then
  check_files
elif [ -n "$container" ]; then
  check_container
else
  check_candidate
fi
phase check

if [ -n "$static" ]; then
  say "switching $current to $id"
elif [ -n "$container" ]; then
  say "switching $current to $id and nginx to 127.0.0.1:$candidate"
else
  say "switching $current to $id and restarting $unit"
fi
switch_to "$id"
restarted=1
if [ -n "$container" ]; then
  container_switch "$candidate" || restarted=0
else
  restart_app || restarted=0
fi
if [ "$restarted" != 1 ] || ! answer=$("$lib/probe" get "$health_url" --wait 60 "${redact[@]}"); then
  if [ "$restarted" != 1 ]; then
    answer="systemctl could not start $unit on it (journalctl -u $unit)"
    [ -z "$container" ] || answer="nginx could not reload (journalctl -u nginx)"
  fi
  reason="release $ref ($short) failed its health check through nginx after the switch: $answer"
  [ -n "$previous" ] || fail "$reason. No previous release to roll back to"
  switch_to "$previous"
  if [ -n "$container" ]; then  # the old slot ran throughout
    container_switch "$live" || true
    systemctl stop "$(slot_unit "$candidate")" || true
  else
    restart_app || true
  fi
  rm -rf "$releases"/.failed-*
  mv "$dir" "$releases/.failed-$id"
  if after=$("$lib/probe" get "$health_url" --wait 60 "${redact[@]}"); then
    fail "$reason. Rolled back to $previous, which answers $health_path with 200 again; the failed tree is $releases/.failed-$id"
  fi
  fail "$reason. Rolled back to $previous, which does not answer either: $after"
fi

[ -z "$container" ] || container_retire "$live" "$candidate"
phase switch
echo "$pointer" >"$dir/.ref"
touch "$dir/.released"
rm -rf "$releases"/.failed-*
# The paths the app had before releases, for people and tools: the serving release's.
if [ -z "$container" ]; then
  ln -sfn current/src "$home/src"
  [ -n "$static" ] || ln -sfn current/venv "$home/venv"
fi
n=0
while read -r _ old; do
  n=$((n + 1))
  if [ "$n" -gt "$keep" ] && [ "$old" != "$dir" ]; then
    rm -rf "$old"
  fi
done < <(released_newest_first)
# Venvs no kept release uses (the failed tree's included: it is gone).
used=$(for link in "$releases"/*/venv; do readlink -f "$link" 2>/dev/null || true; done)
for v in "$VENVS"/*; do
  if [ -d "$v" ] && ! grep -qxF "$v" <<<"$used"; then rm -rf "$v"; fi
done
[ -z "$container" ] || container_prune
say "phases: ${phases[*]}"
say "serving $ref ($short) as $dir"
