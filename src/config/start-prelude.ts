/**
 * The start prelude: a short POSIX sh script the operator puts in front of a launcher's argv when
 * the server has a git source, or a conda env with a direct launcher. It runs inside the server's
 * container, as the server's user, before anything listens:
 *
 * - git (spec.git): clone into the folder on the first start; on later starts fetch and
 *   fast-forward. A folder with local changes or commits of its own is served as it is (never
 *   overwritten: it may hold the user's work), and a failed pull serves the last clone. A failed
 *   clone, a folder that is not a clone, or a clone of another URL stops the server with a message
 *   on stderr (the container's log) and a non-zero exit (the server goes Failed).
 *   Credentials are files under /run/secrets (./git-source.ts): git gets them through a
 *   credential helper scoped to the repository's https origin, a CA bundle, or ssh's -i. git
 *   configuration travels in GIT_CONFIG_COUNT/KEY/VALUE variables the script sets for git alone.
 * - conda (spec.app.condaEnv, direct launchers only; proxied ones hand --conda-env to the proxy):
 *   `conda shell.posix activate ENV`, then the launcher runs inside the env.
 *
 * Then `exec "$@"`: the launcher's argv, unchanged. The script takes its inputs from environment
 * variables (NBSWARM_GIT_*, NBSWARM_CONDA_ENV), none of them secret.
 */
import { GIT_SECRET_FILES, SECRETS_DIR } from './git-source.js';

/** argv[0] of the prelude ($0 of `sh -c`), so a `ps` in the container says what it is. */
export const PRELUDE_NAME = 'nbswarm-start';

const S = SECRETS_DIR;
const F = GIT_SECRET_FILES;

export const START_PRELUDE = `set -eu
say() { printf 'nbswarm-start: %s\\n' "$*" >&2; }
if [ -n "\${NBSWARM_GIT_URL:-}" ]; then
  command -v git >/dev/null 2>&1 || { say "spec.git: the image has no git; install it in the image"; exit 69; }
  url=$NBSWARM_GIT_URL dir=$NBSWARM_GIT_DIR rel=$NBSWARM_GIT_FOLDER branch=\${NBSWARM_GIT_BRANCH:-}
  n=0
  cfg() { export "GIT_CONFIG_KEY_$n=$1" "GIT_CONFIG_VALUE_$n=$2"; n=$((n + 1)); export GIT_CONFIG_COUNT=$n; }
  if [ -r ${S}/${F.credentials} ] && [ -n "\${NBSWARM_GIT_CREDENTIAL_SCOPE:-}" ]; then
    cfg "credential.$NBSWARM_GIT_CREDENTIAL_SCOPE.helper" '!cat ${S}/${F.credentials};:'
  fi
  if [ -r ${S}/${F.ca} ]; then cfg http.sslCAInfo ${S}/${F.ca}; fi
  export GIT_TERMINAL_PROMPT=0
  if [ -r ${S}/${F.identity} ]; then
    key=$(mktemp)
    trap 'rm -f "$key"' EXIT
    cat ${S}/${F.identity} > "$key"
    hosts="-o StrictHostKeyChecking=accept-new"
    if [ -r ${S}/${F.knownHosts} ]; then hosts="-o UserKnownHostsFile=${S}/${F.knownHosts} -o StrictHostKeyChecking=yes"; fi
    export GIT_SSH_COMMAND="ssh -i $key -o IdentitiesOnly=yes $hosts"
  fi
  if [ -d "$dir/.git" ]; then
    origin=$(git -C "$dir" config --get remote.origin.url || true)
    if [ "$origin" != "$url" ]; then
      say "spec.git.folder $rel holds a clone of $origin, not of $url: choose another folder"
      exit 65
    fi
    if [ -n "$(git -C "$dir" status --porcelain)" ]; then
      say "$rel has local changes: serving them without pulling $url"
    elif git -C "$dir" fetch --quiet origin "\${branch:-HEAD}"; then
      current=$(git -C "$dir" symbolic-ref --quiet --short HEAD || true)
      if [ -n "$branch" ] && [ "$current" != "$branch" ]; then
        git -C "$dir" checkout --quiet -B "$branch" FETCH_HEAD
      elif ! git -C "$dir" merge --quiet --ff-only FETCH_HEAD; then
        say "$rel has commits of its own: serving them without the pulled ones"
      fi
      say "pulled $url into $rel ($(git -C "$dir" rev-parse --short HEAD))"
    else
      say "pull of $url failed: serving the last clone in $rel"
    fi
  elif [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    say "spec.git.folder $rel exists and is not a git clone: choose another folder, or empty it"
    exit 65
  else
    mkdir -p "$dir"
    failed() { say "git clone of $url failed (git's message is above)"; exit 66; }
    if [ -n "$branch" ]; then git clone --quiet --branch "$branch" -- "$url" "$dir" || failed
    else git clone --quiet -- "$url" "$dir" || failed
    fi
    say "cloned $url into $rel ($(git -C "$dir" rev-parse --short HEAD))"
  fi
  if [ -n "\${key:-}" ]; then rm -f "$key"; trap - EXIT; fi
  unset GIT_SSH_COMMAND GIT_TERMINAL_PROMPT GIT_CONFIG_COUNT
fi
if [ -n "\${NBSWARM_CONDA_ENV:-}" ]; then
  command -v conda >/dev/null 2>&1 || { say "spec.app.condaEnv: the image has no conda"; exit 69; }
  activate=$(conda shell.posix activate "$NBSWARM_CONDA_ENV") || { say "conda env $NBSWARM_CONDA_ENV cannot be activated"; exit 69; }
  eval "$activate"
fi
exec "$@"
`;

/** The argv that runs the prelude, then `argv`. */
export function withPrelude(argv: readonly string[]): string[] {
  return ['sh', '-c', START_PRELUDE, PRELUDE_NAME, ...argv];
}
