#!/usr/bin/env bash
# A new user's first minutes, as CI: build the wheel, install it into a throwaway venv beside
# PyTorch's CPU build, then run the README's Python quick start (the block between
# <!-- quickstart --> markers) exactly as written, and check what it wrote.
#   TORCH: how the venv gets PyTorch's CPU build. On this project's machines pip finds the CPU
#   wheel on disk (torch==2.13.0); elsewhere: TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" .
test ! -e build || { echo "install check: pip left build/ in the source tree" >&2; exit 1; }
wheel=$(ls "$work"/dist/ddpmkit-*.whl)
"$PYTHON" -m venv "$work/venv"
# shellcheck disable=SC2086  # TORCH may carry pip options
"$work/venv/bin/python" -m pip install --quiet $TORCH
"$work/venv/bin/python" -m pip install --quiet "$wheel"
echo "install check: installed $(basename "$wheel") in $(( $(date +%s) - start )) s," \
     "venv $(du -sh "$work/venv" | cut -f1)"
"$work/venv/bin/ddpmkit" --version

sed -n '/<!-- quickstart -->/,/<!-- \/quickstart -->/p' README.md | sed '1,2d;$d' | sed '$d' \
    > "$work/quickstart.py"
grep -q "ddpmkit.train" "$work/quickstart.py" || { echo "no quick start in README.md" >&2; exit 1; }
mkdir "$work/user"
(cd "$work/user" && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$work/venv/bin/python" "$work/quickstart.py")
count=$(ls "$work/user"/digit-*.png | wc -l)
test "$count" -eq 16 || { echo "install check: expected 16 PNGs, found $count" >&2; exit 1; }
test -d "$work/user/runs/quick/checkpoints" || { echo "install check: no run folder" >&2; exit 1; }
echo "install check: the README's quick start wrote $count PNGs in $(( $(date +%s) - start )) s"
