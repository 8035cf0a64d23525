# Progress for the long steps of the set-up (apt installs, image builds). Source it; it defines
# two functions and sets nothing else.
#
#   nbswarm_progress LABEL TYPICAL_SECONDS COMMAND [ARGS...]
#   nbswarm_logged LOG COMMAND [ARGS...]      COMMAND with stdout and stderr appended to LOG, so
#                                             `nbswarm_progress L 40 nbswarm_logged f.log cmd`
#                                             keeps the step's chatter out of the progress lines
#
# Runs COMMAND (stdout untouched, so `x=$(nbswarm_progress ... cmd)` works) and reports on stderr
# which step runs, the time elapsed and the typical duration measured for it:
#   - on a terminal: one line rewritten every second;
#   - otherwise (CI, logs): a line every NBSWARM_PROGRESS_EVERY seconds (default 20), so a 2-minute
#     step adds six lines, not a hundred.
# Ends with "LABEL: done in Ns" (or "failed after Ns") and returns COMMAND's status. TYPICAL_SECONDS
# 0 means "no estimate". A shell function as COMMAND runs without errexit (bash ignores `set -e`
# inside a command tested by `||`): make such functions return their failures explicitly.

nbswarm_progress() {
  local label=$1 typical=$2
  shift 2
  local start=$SECONDS tty=0 every=${NBSWARM_PROGRESS_EVERY:-20} rc=0 ticker
  [ -t 2 ] && tty=1
  [ "$tty" = 1 ] && every=1
  # A ticker beside the command, not a poll after it: the command's own timing is unchanged. Its
  # stdout goes nowhere so a $(...) around the call never waits for it.
  # Killed without a trap, so it dies at once (its last `sleep 1` lingers for under a second).
  (
    while sleep 1; do
      local elapsed=$((SECONDS - start)) hint=""
      [ $((elapsed % every)) = 0 ] || continue
      if [ "$typical" -gt 0 ]; then
        hint=", typically ~${typical}s"
        [ "$elapsed" -gt $((typical * 3 / 2)) ] && hint="$hint (slower than usual; still working)"
      fi
      if [ "$tty" = 1 ]; then printf '\r\033[K%s: %ss elapsed%s' "$label" "$elapsed" "$hint" >&2
      else printf '%s: %ss elapsed%s\n' "$label" "$elapsed" "$hint" >&2; fi
    done
  ) >/dev/null &
  ticker=$!
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  { wait "$ticker"; } 2>/dev/null || true
  [ "$tty" = 1 ] && printf '\r\033[K' >&2
  if [ "$rc" = 0 ]; then echo "$label: done in $((SECONDS - start))s" >&2
  else echo "$label: failed after $((SECONDS - start))s" >&2; fi
  return "$rc"
}

nbswarm_logged() {
  local log=$1
  shift
  "$@" >>"$log" 2>&1
}
