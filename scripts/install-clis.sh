#!/usr/bin/env bash
# Install the agent CLIs that provcfg's integration tests drive (Claude Code, OpenCode,
# Codex) into tools/clis/node_modules, at the exact versions pinned in
# tools/clis/package.json and package-lock.json. Never installs anything globally.
#
# Idempotent: when the installed tree matches the pins (a stamp of both files, written
# only after every binary answered --version with its pinned version), it does nothing.
#
# Why `npm install --no-save` and not `npm ci`: the registry these machines reach lacks
# some of opencode-ai's per-platform packages (darwin, windows, some arm64 versions), so
# npm cannot record them in the lockfile and `npm ci` refuses the lock as "out of sync".
# `npm install --no-save` installs exactly the locked versions (integrity-checked), skips
# the optional platform packages that do not exist, and never rewrites the pin files.
#
# Usage: scripts/install-clis.sh [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/clis"
stamp="$dir/node_modules/.provcfg-installed"
force=0
[[ "${1:-}" == "--force" ]] && force=1

say() { printf 'install-clis: %s\n' "$*"; }
die() { printf 'install-clis: error: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 \
  || die "npm not found on PATH; install Node.js >= 18 with npm (Debian: apt-get install nodejs npm), then rerun $0"
command -v node >/dev/null 2>&1 || die "node not found on PATH; install Node.js >= 18, then rerun $0"

# The CLIs write state under HOME even for --version; keep it out of the user's home.
scratch_home="$(mktemp -d)"
trap 'rm -rf "$scratch_home"' EXIT

want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"

# name of the npm package, its binary, and the pinned version read from package.json
pins() {
  node -e '
    const deps = require(process.argv[1]).dependencies;
    const bins = {"@anthropic-ai/claude-code": "claude", "opencode-ai": "opencode", "@openai/codex": "codex"};
    for (const [name, bin] of Object.entries(bins)) console.log(name, bin, deps[name]);
  ' "$dir/package.json"
}

verify() {
  local name bin version out
  while read -r name bin version; do
    [[ -x "$dir/node_modules/.bin/$bin" ]] || { say "$bin: missing"; return 1; }
    out="$(HOME="$scratch_home" timeout 60 "$dir/node_modules/.bin/$bin" --version 2>/dev/null | head -n1)" \
      || { say "$bin: --version failed"; return 1; }
    [[ "$out" == *"$version"* ]] || { say "$bin: reports '$out', pinned $version"; return 1; }
    say "$bin $version ok ($name)"
  done < <(pins)
}

if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && verify >/dev/null; then
  say "already installed at the pinned versions in $dir; nothing to do"
  exit 0
fi

say "installing pinned CLIs into $dir/node_modules (node $(node --version), npm $(npm --version), $(uname -m))"
rm -f "$stamp"
npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
  || die "npm install failed in $dir; see the npm output above"
verify || die "an installed CLI does not run at its pinned version; rerun with --force, or check that this platform ($(uname -s) $(uname -m)) has a native package for it"
printf '%s\n' "$want" > "$stamp"
say "done"
