#!/bin/sh
# Runs one libFuzzer harness from its seed corpus without writing into the
# source tree:
#   run.sh <harness executable> <name> [libFuzzer flags...]
# The seed corpus (corpus/<name>) and dictionary (dict/<name>.dict, when
# there is one) come from this directory. New inputs go to a scratch
# corpus: $FUZZ_WORK/<name> when FUZZ_WORK is set (kept, so a later run
# resumes from it), else a temporary directory removed at the end. A crash,
# leak or UB report leaves its input as <name>-crash-<sha1> (or -leak-,
# -timeout-, -oom-) in $FUZZ_ARTIFACTS (default: the current directory).
set -eu
exe=$1
name=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/$name
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 2; }
dict=
[ -f "$here/dict/$name.dict" ] && dict=-dict=$here/dict/$name.dict

if [ -n "${FUZZ_WORK:-}" ]; then
  work=$FUZZ_WORK/$name
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$name.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
artifacts=${FUZZ_ARTIFACTS:-.}
mkdir -p "$artifacts"

# Leaks are findings; a UB report stops the run with its stack.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS UBSAN_OPTIONS

# The first directory is where libFuzzer writes what it finds; the seeds
# are only read. A finding exits 1: libFuzzer's own 77 means "skipped" to
# meson test.
"$exe" $dict -artifact_prefix="$artifacts/$name-" -print_final_stats=1 -error_exitcode=1 \
  "$@" "$work" "$seeds"
