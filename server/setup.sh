#!/bin/bash
# shellcheck disable=SC2153  # the upper-case names come from settings.env
# Deploys the app on this server, as root, after the fetcher unpacked the artefact. cloud-init
# runs it once at first boot; run it again to repair. Every step checks before it acts. The app
# itself is put in place by $LIB/release (the first release goes through the same code as every
# later one); gunicorn restarts here only when its settings changed. A static site (KIND=static)
# has no gunicorn and no units of its own beside the secrets' one: nginx serves its files.
set -euo pipefail
umask 022
# shellcheck source=/dev/null
. "$(dirname "$(readlink -f "$0")")/settings.env"

user=$APP
unit=$UNIT
home=$HOME_DIR
lib=$LIB
etc=$ETC
state=$STATE
nginx_dir=$NGINX_DIR

log() { echo "webstack-setup: $*"; }

# install_deb PACKAGE URL SECONDS WHAT: AWS's .deb from URL unless installed (no URL: none)
install_deb() {
  [ -n "$2" ] || return 0
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" && return 0
  log "$4"
  local deb
  deb=$(mktemp --suffix=.deb)
  curl --fail --silent --show-error --location --retry 3 --max-time "$3" --output "$deb" "$2"
  # apt waits for the dpkg lock (Ubuntu's first boot runs unattended-upgrades); dpkg fails
  apt-get install -y -o DPkg::Lock::Timeout=600 "$deb"
  rm -f "$deb"
}

# On EC2: the SSM agent where the image lacks it; the CloudWatch agent (memory and disk
# metrics, nginx, app and cloud-init logs)
install_deb amazon-ssm-agent "$SSM_AGENT_URL" 120 "SSM agent (Session Manager, Run Command)"
[ -z "$SSM_AGENT_URL" ] || systemctl enable --now --quiet amazon-ssm-agent
install_deb amazon-cloudwatch-agent "$CW_AGENT_URL" 300 "CloudWatch agent"
agent_conf=$(sha256sum "$etc/cloudwatch-agent.json")
if [ -n "$CW_AGENT_URL" ] && [ "$agent_conf" != "$(cat "$state/cloudwatch-agent" 2>/dev/null || true)" ]; then
  /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
    -c "file:$etc/cloudwatch-agent.json"
  install -d -m 0755 "$state"
  echo "$agent_conf" > "$state/cloudwatch-agent"
fi

log "app directory $home"
install -d -o "$user" -g "$user" -m 0750 "$home"
install -d -m 0755 "$state"
# nginx serves the static files straight from the app's tree: let it in through the group.
if ! id -nG www-data | grep -qw -- "$user"; then
  usermod -a -G "$user" www-data
  nginx_restart=1
fi

[ -z "$HTTPS" ] || "$lib/tls"
[ "$TLS_MODE" != letsencrypt ] || install -d -m 0755 "$state/acme"
log "nginx"
rm -f "$nginx_dir/sites-enabled/default"
[ "$RUNTIME" != docker ] || "$lib/release" --container-init
nginx -t -q
# Enabling goes through the SysV compatibility scripts (seconds on a small server): only if needed.
systemctl is-enabled --quiet nginx || systemctl enable --quiet nginx
site=$(sha256sum "$nginx_dir/conf.d/$APP.conf")
if [ "${nginx_restart:-0}" = 1 ]; then
  systemctl restart nginx  # workers pick up the new group only on a restart
  echo "$site" > "$state/nginx-site"
elif [ "$site" != "$(cat "$state/nginx-site" 2>/dev/null || true)" ]; then
  systemctl reload-or-restart nginx
  echo "$site" > "$state/nginx-site"
else
  systemctl start nginx  # a no-op unless it had stopped
fi

units=()
if [ "$RUNTIME" = docker ]; then  # the release enables the slot it starts
  units+=("$unit-container-log.service")
elif [ "$KIND" != static ]; then
  units+=("$unit.socket" "$unit.service")
fi
[ -z "$SECRETS" ] || units+=("$unit-secrets.service")
[ -z "$PRE_START" ] || units+=("$unit-prestart.service")
# A database's or cache's credentials are fetched again every 5 minutes (a rotated password).
refresh=
[ -z "$DATABASE_PARAMETER$CACHE_PARAMETER" ] || refresh="$unit-secrets-refresh"
[ -z "$refresh" ] || units+=("$refresh.timer")
if [ ${#units[@]} -gt 0 ]; then
  log "systemd units"
  # A reload re-reads every unit on the machine (seconds on a small server): only when one of
  # ours changed since systemd loaded it. On a first boot none was loaded yet, so none needs it.
  systemctl enable --quiet --no-reload "${units[@]}"
  for u in "${units[@]}" ${refresh:+"$refresh.service"}; do
    if [ "$(systemctl show --property=NeedDaemonReload --value "$u")" = yes ]; then
      systemctl daemon-reload
      break
    fi
  done
fi

if [ -n "$FETCH_UV" ]; then  # local runs bring their own uv; bootcmd has usually fetched it
  log "uv $UV_VERSION"
  [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ] || "$lib/fetch-uv"
fi

# The release starts the socket: started earlier, a request would start gunicorn before a release.
log "release"
"$lib/release"
if [ "$RUNTIME" = docker ]; then
  systemctl start "$unit-container-log.service" "$unit-container@$(cat "$state/live-slot").service"
  # the app's environment comes with the user-data, not with a release: on a change, the
  # serving image again in the other slot (no request fails)
  settings=$(sha256sum "$etc/app.env" "$ROOT/etc/systemd/system/$unit-container@.service" \
               | sha256sum | cut -d' ' -f1)
  recorded=$(cat "$state/settings" 2>/dev/null || true)
  if [ -n "$recorded" ] && [ "$settings" != "$recorded" ]; then
    log "restarting the container of $unit (settings changed)"
    "$lib/release" --container-restart
  fi
  echo "$settings" > "$state/settings"
elif [ "$KIND" != static ]; then
  systemctl start "$unit.socket"  # a no-op when the release started it; a repair run needs it
  # The WSGI server's settings come with the user-data, not with a release: restart on a change.
  settings=$(sha256sum "$SERVER_CONFIG" "$etc/app.env" | sha256sum | cut -d' ' -f1)
  recorded=$(cat "$state/settings" 2>/dev/null || true)
  if [ "$settings" != "$recorded" ]; then
    if [ -n "$recorded" ]; then
      log "restarting $unit (settings changed)"
      systemctl restart "$unit.service"
    fi
    echo "$settings" > "$state/settings"
  fi
  systemctl start "$unit.service"
fi

[ -z "$refresh" ] || systemctl start "$refresh.timer"  # after the release: never before it

log "waiting for $HEALTH_PATH through nginx"
"$lib/probe" get "$HEALTH_URL" --wait 60 || { log "$HEALTH_URL did not answer 200"; exit 1; }

if [ "$TLS_MODE" = letsencrypt ]; then
  # A restored certificate needs no new issue; without one nginx serves the placeholder and the
  # timer retries: a certificate that can wait never fails a boot.
  "$lib/tls" issue || log "no Let's Encrypt certificate yet: $unit-tls.timer retries"
  systemctl enable --now --quiet certbot.timer "$unit-tls.timer"
fi
log "done"
