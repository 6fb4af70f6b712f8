#!/bin/bash
# shellcheck disable=SC2153  # the upper-case names come from settings.env
# The app's code from git, for the release script (runs as the app's user):
#   fetch-app resolve REF       fetch REF (tag, branch or commit SHA) shallowly into a bare
#                               cache and print the commit it names
#   fetch-app export SHA DIR    write that commit's tree into DIR (no .git: a release is files)
set -euo pipefail
# shellcheck source=/dev/null
. "$(dirname "$(readlink -f "$0")")/settings.env"

case "${1:-}" in
  resolve)
    ref=${2:?fetch-app resolve REF}
    [ -d "$GIT_CACHE" ] || git init --quiet --bare "$GIT_CACHE"
    git -C "$GIT_CACHE" config remote.origin.url "$APP_REPO"
    git -C "$GIT_CACHE" fetch --quiet --depth 1 origin "$ref"
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
