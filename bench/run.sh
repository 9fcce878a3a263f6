#!/bin/sh
# The bench harness (python3, stdlib only): bench/run.sh [--quick] [--out DIR]; see bench/README.md.
exec python3 "$(dirname "$0")/run.py" "$@"
