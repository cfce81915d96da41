# shellcheck shell=bash
# Sourced first by every fake: records the call in FAKE_CALLS, one file per call, named so
# that they sort in the order they were made: who ran it (the user a fake runuser switched
# to), the command and its arguments, NUL-separated. psql adds what it read, in <file>.in.
fake_name=$(basename "$0")
fake_call="$FAKE_CALLS/$(date +%s%N).$$.$fake_name"
printf '%s\0' "${FAKE_USER:-root}" "$fake_name" "$@" >"$fake_call"
