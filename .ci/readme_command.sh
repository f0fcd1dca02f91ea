#!/usr/bin/env bash
# Runs one of the README's two set-up commands, read from the README itself, so CI and the README cannot drift.
# The README marks them with <!-- readme-command:install --> and <!-- readme-command:test --> above their code blocks.
set -euo pipefail
which=$1
cmd=$(awk -v tag="<!-- readme-command:$which -->" '
  $0 == tag {found=1; next}
  found && /^```/ {if (inblock) exit; inblock=1; next}
  found && inblock {print}
' README.md)
if [ -z "$cmd" ]; then echo "README.md has no command marked readme-command:$which" >&2; exit 2; fi
echo "+ $cmd"
bash -euo pipefail -c "$cmd"
