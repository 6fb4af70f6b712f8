#!/bin/bash
# shellcheck disable=SC2153  # the upper-case names come from settings.env
# The app's code from git, for the release script (runs as the app's user):
#   fetch-app resolve REF       fetch REF (tag, branch or commit SHA) shallowly into a bare
#                               cache and print the commit it names
#   fetch-app export SHA DIR    write that commit's tree into DIR (no .git: a release is files)
# A private repository (resolve only: export reads the cache):
# - over ssh, the deploy key is read from SSM ($REPO_SSH_KEY_PARAMETER) into a 0600 file in a
#   private directory of this user's, removed on exit; ssh trusts only the pinned host keys
#   ($KNOWN_HOSTS) and never prompts;
# - over https, the token ($REPO_TOKEN_PARAMETER) reaches git through this process's
#   environment and a credential helper: never a command line, the URL, a git config or a file.
# On failure: git's and ssh's own error lines on stderr, without git's generic advice, so that
# "Host key verification failed." or "Permission denied (publickey)." is what the release shows.
set -euo pipefail
# shellcheck source=/dev/null
. "$(dirname "$(readlink -f "$0")")/settings.env"

die() { echo "fetch-app: $*" >&2; exit 1; }
ssm_get() { /usr/bin/python3 "$LIB/ssm-get" --get "$1"; }
export GIT_TERMINAL_PROMPT=0  # no credential: fail, never wait for a user

credential=(-c credential.helper=)  # no helper of the user's or the system's stores anything
with_credential() {
  if [ -n "$REPO_SSH_KEY_PARAMETER" ]; then
    private=$(mktemp -d "${TMPDIR:-/dev/shm}/fetch-app.XXXXXX")  # 0700, tmpfs on a server
    trap 'rm -rf "$private"' EXIT
    trap 'exit 1' HUP INT TERM
    (umask 077 && ssm_get "$REPO_SSH_KEY_PARAMETER" >"$private/key") \
      || die "could not read the deploy key from the SSM parameter $REPO_SSH_KEY_PARAMETER"
    printf -v GIT_SSH_COMMAND 'ssh -F /dev/null -i %q -o IdentitiesOnly=yes -o BatchMode=yes %s' \
      "$private/key" "-o StrictHostKeyChecking=yes -o ConnectTimeout=20"
    printf -v GIT_SSH_COMMAND '%s -o UserKnownHostsFile=%q -o GlobalKnownHostsFile=/dev/null' \
      "$GIT_SSH_COMMAND" "$KNOWN_HOSTS"
    export GIT_SSH_COMMAND
  elif [ -n "$REPO_TOKEN_PARAMETER" ]; then
    REPO_TOKEN=$(ssm_get "$REPO_TOKEN_PARAMETER") \
      || die "could not read the token from the SSM parameter $REPO_TOKEN_PARAMETER"
    export REPO_TOKEN REPO_TOKEN_USER
    # shellcheck disable=SC2016  # expanded by the helper's shell, from the environment
    credential+=(-c 'credential.helper=!f() { test "$1" = get || exit 0;
      printf "username=%s\npassword=%s\n" "$REPO_TOKEN_USER" "$REPO_TOKEN"; }; f')
  fi
}

case "${1:-}" in
  resolve)
    ref=${2:?fetch-app resolve REF}
    [ -d "$GIT_CACHE" ] || git init --quiet --bare "$GIT_CACHE"
    git -C "$GIT_CACHE" config remote.origin.url "$APP_REPO"
    with_credential
    if ! out=$(git "${credential[@]}" -C "$GIT_CACHE" fetch --quiet --depth 1 origin "$ref" 2>&1)
    then
      tr -d '\r' <<<"$out" | grep -v -x -e '' -e 'Please make sure you have the correct access rights' \
        -e 'and the repository exists.' >&2 || true
      exit 1
    fi
    git -C "$GIT_CACHE" rev-parse --verify "FETCH_HEAD^{commit}"
    ;;
  export)
    sha=${2:?fetch-app export SHA DIR}
    dir=${3:?fetch-app export SHA DIR}
    mkdir -p "$dir"
    git -C "$GIT_CACHE" archive --format=tar "$sha" | tar -x -C "$dir"
    ;;
  *)
    echo "usage: fetch-app resolve REF | fetch-app export SHA DIR" >&2
    exit 2
    ;;
esac
