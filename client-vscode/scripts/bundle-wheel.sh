#!/usr/bin/env bash
# Build the perfhint wheel from this checkout and put it in client-vscode/python/, where `vsce package`
# picks it up (see .vscodeignore) and the extension installs it into its private environment.
#
# The build runs on a copy of the sources in a temporary directory, so it leaves no build/ or
# *.egg-info in the checkout. `pip wheel --no-deps` fetches the build backend (setuptools) from PyPI
# in an isolated build environment unless PIP_NO_BUILD_ISOLATION is set; the wheel's own
# dependencies (onnxruntime, ...) are not bundled: pip installs them from PyPI on the user's machine.
set -euo pipefail
client=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$client/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/src"
tar -C "$root" \
  --exclude=.git --exclude=.venv --exclude='.ci-*' --exclude=node_modules --exclude=client-vscode \
  --exclude=tests --exclude=benchmarks --exclude='*.egg-info' --exclude=build --exclude=dist \
  --exclude=__pycache__ --exclude=.pytest_cache \
  -cf - . | tar -C "$work/src" -xf -
# pyproject names README.md as the long description; an unbuilt checkout may not have one yet.
[ -f "$work/src/README.md" ] || echo "perfhint" > "$work/src/README.md"

"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/perfhint-*.whl)
mkdir -p "$client/python"
rm -f "$client"/python/perfhint-*.whl
cp "$wheel" "$client/python/"
echo "bundle-wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) -> client-vscode/python/"
