#!/bin/bash
# shellcheck disable=SC2153,SC2154  # settings.env's upper-case names; release's variables
# appRuntime docker: the container half of the release engine, sourced by release (which
# defines say, fail, abandon, app_env, excerpt and the release's variables). The app is an image
# by digest (HOST[:PORT]/NAME@sha256:<64 hex>), run by rootful podman in one of two slots,
# $unit-container@<port>.service for each port of $CONTAINER_SLOTS, published on 127.0.0.1.
# A release pulls the image, copies its static files out, starts the idle slot with it and
# checks $HEALTH_PATH on its port, then points nginx's upstream at it ($state/upstream.conf,
# the other slot as backup) and reloads nginx (old workers finish their requests), checks
# through nginx, and stops the old slot gracefully; a failure points nginx back at the old
# slot, which ran throughout. Each kept release keeps its image: going back pulls nothing.
# State: $state/live-slot (the port that serves; none yet: the first), $state/slot-<port> (its
# image), $state/images (every image pulled, for pruning), $state/upstream.conf (nginx's).

read -r -a slots <<<"$CONTAINER_SLOTS"
upstream=$state/upstream.conf
run_dir=${CONTAINER_ENV%/*}

slot_unit() { echo "$unit-container@$1.service"; }
live_slot() { cat "$state/live-slot" 2>/dev/null || echo "${slots[0]}"; }
other_slot() { if [ "$1" = "${slots[0]}" ]; then echo "${slots[1]}"; else echo "${slots[0]}"; fi; }
slot_image() { cat "$state/slot-$1"; }

container_flags() {  # how every run of the app's image runs (the slots, the hooks)
  flags=(--pull=never --env-file "$CONTAINER_ENV" --env "PORT=$CONTAINER_PORT"
         --user "$(id -u "$user"):$(id -g "$user")" --cap-drop=all
         --security-opt=no-new-privileges --read-only --tmpfs /tmp
         --volume "$DATA_DIR:$DATA_DIR")
}

container_env() {  # app.env + secrets.env as podman's --env-file reads them: KEY=VALUE verbatim
  # (podman does not unquote systemd's KEY="value"); 0600 under /run, never on a command line
  local keys
  install -d -m 0700 "$run_dir"
  keys=$(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "$etc/app.env" \
           ${SECRETS:+"$SECRETS_ENV"})
  (app_env
   umask 077
   for key in $keys; do
     if [[ ${!key} == *$'\n'* ]]; then
       echo "release: $key holds a line break, which podman's --env-file cannot carry" >&2
       exit 1
     fi
     printf '%s=%s\n' "$key" "${!key}"
   done >"$CONTAINER_ENV.new") || { rm -f "$CONTAINER_ENV.new"; return 1; }
  mv -f "$CONTAINER_ENV.new" "$CONTAINER_ENV"
}

container_hook() {  # NAME IMAGE: the hook script $lib/NAME run by /bin/sh inside IMAGE
  container_flags
  podman run --rm --replace --name "$unit-$1" "${flags[@]}" \
    --volume "$lib/$1:/webstack-$1:ro" --entrypoint /bin/sh "$2" "/webstack-$1"
}

container_prepare() {  # SLOT: ExecStartPre of the slot's unit (each start: a release, a boot)
  container_env || exit 1
  [ -n "$PRE_START" ] || return 0
  # its output both in the journal and where a release's failure message reads it
  container_hook pre-start "$(slot_image "$1")" 2>&1 | tee "$state/slot-$1.hooks.log"
}

container_run() {  # SLOT: ExecStart of the slot's unit; conmon stays, podman returns
  container_flags
  exec podman run --detach --rm --replace --name "$unit-$1" --sdnotify=conmon \
    --cgroups=no-conmon --log-driver=passthrough --publish "127.0.0.1:$1:$CONTAINER_PORT" \
    "${flags[@]}" "$(slot_image "$1")"
}

container_pull() {  # IMAGE LOG: into podman's store unless there (a kept release: instant)
  local host=${1%%/*} tls=() auth="$run_dir/auth.json" pulled=0
  if podman image exists "$1"; then
    echo "$1 is already here" >"$2"
    return 0
  fi
  grep -qxF "$1" "$state/images" 2>/dev/null || echo "$1" >>"$state/images"
  # plain HTTP only for the local VM's registry (never on EC2)
  [ -z "$INSECURE_REGISTRY" ] || [ "$host" != "$INSECURE_REGISTRY" ] || tls=(--tls-verify=false)
  install -d -m 0700 "$run_dir"
  /usr/bin/python3 "$lib/registry-auth" "$1" "$auth" >"$2" 2>&1 || return 1
  podman pull --quiet --authfile "$auth" "${tls[@]}" "$1" >>"$2" 2>&1 || pulled=$?
  rm -f "$auth"
  return "$pulled"
}

container_static() {  # IMAGE DIR: the image's $STATIC_DIR (relative to its WORKDIR) to DIR
  local name="$unit-static" workdir from
  workdir=$(podman image inspect --format '{{.Config.WorkingDir}}' "$1") || return 1
  case $STATIC_DIR in
    /*) from=$STATIC_DIR ;;
    *) from="${workdir%/}/$STATIC_DIR" ;;
  esac
  install -d -o "$user" -g "$user" -m 0755 "$2"
  podman create --replace --name "$name" --pull=never "$1" /webstack-never-run >/dev/null \
    || return 1
  if podman cp "$name:$from/." "$2" 2>/dev/null; then
    chown -R "$user:$user" "$2"
    say "static files: $from of the image"
  else
    say "static files: the image has no $from (appStaticUrl answers 404)"
  fi
  podman rm --force "$name" >/dev/null
}

container_fetch() {  # the release's image and its static files, into $dir
  say "pulling $pointer"
  container_pull "$pointer" "$dir/.fetch.log" \
    || abandon "could not pull it: $(excerpt "$dir/.fetch.log" 3)"
  echo "$pointer" >"$dir/image"
  if [ -n "$STATIC_DIR" ]; then
    container_static "$pointer" "$dir/static" >"$dir/.static.log" 2>&1 \
      || abandon "could not copy its static files out: $(excerpt "$dir/.static.log" 3)"
    cat "$dir/.static.log"
  fi
}

slot_log() {  # SLOT: the end of its pre-start hooks' output, and of its unit's journal
  local hooks="$state/slot-$1.hooks.log" journal
  journal=$(journalctl --unit "$(slot_unit "$1")" --lines 5 --output cat 2>/dev/null \
              | "$lib/probe" redact "${redact[@]}" | tr '\n' ' ') || journal=
  [ ! -s "$hooks" ] || echo "its pre-start hooks' output ends: $(excerpt "$hooks" 3)"
  [ -z "$journal" ] || echo "its journal ends: $journal"
}

container_start() {  # SLOT IMAGE: the slot's unit (re)started on IMAGE; its port answers
  local answer
  echo "$2" >"$state/slot-$1"
  rm -f "$state/slot-$1.hooks.log"
  systemctl stop "$(slot_unit "$1")" 2>/dev/null || true  # a stale candidate
  if ! systemctl start "$(slot_unit "$1")"; then
    echo "its container did not start (journalctl -u $(slot_unit "$1")) $(slot_log "$1")"
    return 1
  fi
  if ! answer=$("$lib/probe" get "http://127.0.0.1:$1$health_path" --wait 60 "${redact[@]}"); then
    systemctl stop "$(slot_unit "$1")" || true
    echo "$answer; $(slot_log "$1")"
    return 1
  fi
}

check_container() {  # the candidate: the idle slot on the new image answers $health_path
  local why
  live=$(live_slot)
  candidate=$(other_slot "$live")
  [ -n "$previous" ] || candidate=$live  # a first release: nothing serves
  say "starting $pointer on 127.0.0.1:$candidate"
  why=$(container_start "$candidate" "$pointer") \
    || abandon "its health check failed before it took traffic: $why"
}

container_switch() {  # SLOT: nginx proxies to it (the other slot as backup); its old workers
  # finish their requests with the old slot (as cloud-init/files/container-upstream.conf.j2)
  printf '# %s: the live slot, then the other as backup (rewritten by each release)\n' "$APP" \
    >"$upstream.new"
  printf 'server 127.0.0.1:%s max_fails=0;\nserver 127.0.0.1:%s backup max_fails=0;\n' \
    "$1" "$(other_slot "$1")" >>"$upstream.new"
  mv -f "$upstream.new" "$upstream"
  systemctl reload nginx
}

container_retire() {  # OLD NEW: NEW serves (boots with it); OLD stops gracefully (TERM)
  echo "$2" >"$state/live-slot"
  systemctl enable --quiet --no-reload "$(slot_unit "$2")"
  [ "$1" = "$2" ] && return 0
  systemctl disable --quiet --no-reload "$(slot_unit "$1")" || true
  systemctl stop "$(slot_unit "$1")" || true
}

container_restart() {  # the serving image again in the other slot (new secrets), switched to
  local live candidate why
  live=$(live_slot)
  candidate=$(other_slot "$live")
  why=$(container_start "$candidate" "$(slot_image "$live")") || { echo "$why" >&2; return 1; }
  container_switch "$candidate"
  container_retire "$live" "$candidate"
}

container_init() {  # setup: the log unit's file has its directory
  install -d -o "$user" -g "$user" -m 0750 "${CONTAINER_LOG%/*}"
}

container_prune() {  # the images that no kept release runs: each pulled one, once
  local kept ref left=()
  kept=$(cat "$releases"/*/image 2>/dev/null || true)
  [ -e "$state/images" ] || return 0
  while read -r ref; do
    if grep -qxF "$ref" <<<"$kept"; then
      left+=("$ref")
    else
      podman rmi --force "$ref" >/dev/null 2>&1 || true
    fi
  done <"$state/images"
  printf '%s\n' "${left[@]}" >"$state/images"
}

container_exec() {  # CMD [ARG...]: release --run, in the live slot's image with its flags
  local image
  image=$(slot_image "$(live_slot)") || fail "nothing is released yet"
  container_env || fail "the app's environment cannot be given to podman"
  container_flags
  exec podman run --rm "${flags[@]}" "$image" "$@" </dev/null
}
