#!/bin/bash
# shellcheck disable=SC2153  # the upper-case names come from settings.env
# nginx's certificate for the app, in $TLS_DIR (TLS_MODE selfsigned or letsencrypt).
#   tls        setup, before nginx: keep a good certificate; letsencrypt: else restore the one
#              stored in SSM, else a self-signed placeholder (nginx starts and answers the
#              HTTP-01 challenge)
#   tls issue  (letsencrypt) setup, then <unit>-tls.timer: certbot when the certificate is
#              missing or expires within 30 days, only once every name reaches this server
#              (else certbot would spend Let's Encrypt's failed-validation allowance: DNS or the
#              Elastic IP not here yet); then, or when the served one is not stored yet, `store`
#   tls store  put the served certificate (fullchain, then key) in SSM unless $STATE/tls-stored
#              says it is there
#   tls deployed  certbot's deploy hook (each issue and renewal): serve the new one, store it
# Replacements restore the certificate kept in SSM instead of asking Let's Encrypt again (after 5
# duplicates a week it refuses); no boot fails for a certificate, the timer retries. No ssm-get
# (a local run): no store.
# ECDSA P-256: every client speaks it, and the key takes milliseconds where RSA takes seconds.
set -euo pipefail
umask 077
# shellcheck source=/dev/null
. "$(dirname "$(readlink -f "$0")")/settings.env"

dir=$TLS_DIR
name=$CERT_NAME
alt_names=$ALT_NAMES
lib=$LIB
state=$STATE
slot=$TLS_PARAMETER
ssm=("$lib/ssm-get")
read -r -a names <<<"$DOMAIN_NAMES"
log() { echo "tls: $*" >&2; }

# good CERT KEY SECONDS: trusted (no placeholder), for each name, KEY's, valid SECONDS more
good() {
  local n
  openssl x509 -in "$1" -noout -checkend "$3" >/dev/null || return 1
  openssl verify -untrusted "$1" "$1" >/dev/null || return 1
  [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ] || return 1
  for n in "${names[@]}"; do
    openssl x509 -in "$1" -noout -checkhost "$n" | grep -q " does match" || return 1
  done
} 2>/dev/null

pair() { cat "$dir/fullchain.pem" "$dir/privkey.pem"; }

restore() {
  [ -x "$lib/ssm-get" ] || return 1
  "${ssm[@]}" --get "$slot" > "$dir/stored.new" || { log "could not read $slot"; return 1; }
  sed -n '/-BEGIN CERT/,/-END CERT/p' "$dir/stored.new" > "$dir/fullchain.pem.new"
  sed -n '/-BEGIN .*PRIVATE KEY/,/-END .*PRIVATE KEY/p' "$dir/stored.new" > "$dir/privkey.pem.new"
  rm "$dir/stored.new"
  if ! good "$dir/fullchain.pem.new" "$dir/privkey.pem.new" 3600; then
    log "$slot holds no certificate for ${names[*]} valid for another hour"
    return 1
  fi
  mv "$dir/privkey.pem.new" "$dir/privkey.pem"
  mv "$dir/fullchain.pem.new" "$dir/fullchain.pem"
  pair | sha256sum > "$state/tls-stored"
  log "restored the certificate stored in $slot"
}

store() {
  [ -x "$lib/ssm-get" ] && [ "$(pair | sha256sum)" != "$(cat "$state/tls-stored" 2>/dev/null)" ] \
    || return 0
  pair | "${ssm[@]}" --put "$slot" || { log "could not store the certificate in $slot"; return 1; }
  pair | sha256sum > "$state/tls-stored"
  log "stored the certificate in $slot"
}

issue() {
  local n token ok=0
  if good "$dir/fullchain.pem" "$dir/privkey.pem" $((30 * 86400)); then store; return; fi
  token=.well-known/acme-challenge/$(openssl rand -hex 16)
  (umask 022; mkdir -p "$state/acme/${token%/*}"; : > "$state/acme/$token")
  for n in "${names[@]}"; do
    curl -fs --max-time 10 -o /dev/null "http://$n/$token" \
      || { log "http://$n/ does not reach this server yet"; ok=1; }
  done
  rm "$state/acme/$token"
  [ "$ok" = 0 ] || { log "certbot not run: nginx keeps its certificate"; return 1; }
  log "requesting a Let's Encrypt certificate for ${names[*]}"
  # certbot >= 2.0 (Debian 12, Ubuntu 24.04) makes ECDSA P-256 keys: chain and key fit the slot
  certbot certonly --non-interactive --agree-tos --email "$TLS_EMAIL" \
    --webroot --webroot-path "$state/acme" --cert-name "$name" "${names[@]/#/--domain=}" \
    --deploy-hook "$lib/tls deployed" \
    || { log "certbot failed: nginx keeps its certificate"; return 1; }
}

deployed() {
  ln -sfn "${RENEWED_LINEAGE:?certbot sets it}/fullchain.pem" "$dir/fullchain.pem"
  ln -sfn "$RENEWED_LINEAGE/privkey.pem" "$dir/privkey.pem"
  systemctl reload nginx
  store
}

if [ "$TLS_MODE" = letsencrypt ]; then
  case "${1:-}" in
    issue|store|deployed) "$1"; exit ;;
    "") install -d -m 0700 "$dir" ;;
    *) log "usage: tls [issue|store|deployed]"; exit 2 ;;
  esac
  good "$dir/fullchain.pem" "$dir/privkey.pem" 3600 || restore || rm -f "$dir"/*.new
fi

if [ ! -e "$dir/fullchain.pem" ]; then
  install -d -m 0700 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj "/CN=$name" \
    -addext "subjectAltName=$alt_names" \
    -keyout "$dir/privkey.pem.new" -out "$dir/fullchain.pem.new" 2>/dev/null
  mv "$dir/privkey.pem.new" "$dir/privkey.pem"
  mv "$dir/fullchain.pem.new" "$dir/fullchain.pem"
  echo "tls: self-signed certificate for $name"
fi
