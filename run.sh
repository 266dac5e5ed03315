#!/bin/bash
# The Linux WebJob's entry point. The runner starts it with bash from a copy
# of the WebJob folder; the binary sits beside it. A zip does not always keep
# the executable bit, so it is set here. exec hands the process to the worker,
# so that the runner's SIGTERM reaches it and its exit status is the job's.
set -eu
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -x "$dir/mapsworker" ] || chmod +x "$dir/mapsworker"
exec "$dir/mapsworker" run "$@"
