# Sourced by scripts/demo and scripts/test: OS packages, virtual environment, pinned deps.
# Idempotent: installs only what is missing and reinstalls Python packages only when
# pyproject.toml or constraints.txt changed.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROJECT_DIR="$(pwd)"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v python3.11 >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${HUB_WITH_BROWSER:-0}" = "1" ]; then
    command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
    # A CJK font, so the console's Chinese in browser tests and screenshots is legible.
    fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || need_apt+=(fonts-wqy-microhei)
fi
apt_install() {
    echo "installing OS packages: $*"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}
if [ ${#need_apt[@]} -gt 0 ]; then
    apt_install "${need_apt[@]}"
fi

PYTHON="${HUB_PYTHON:-$(command -v python3.11 || command -v python3)}"
# A C compiler and Python's headers, for compiling the hot modules (hub/native.py).
need_build=()
command -v gcc >/dev/null 2>&1 || need_build+=(gcc)
python_h="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h"
[ -f "$python_h" ] || need_build+=(python3-dev)
if [ ${#need_build[@]} -gt 0 ]; then
    apt_install "${need_build[@]}"
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    mkdir -p var
    if ! .venv/bin/python -m pip install -c constraints.txt -e ".[dev]" >var/pip.log 2>&1; then
        tail -30 var/pip.log
        echo "installing Python packages failed; full log in var/pip.log" >&2
        exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
export PATH="$PROJECT_DIR/.venv/bin:$PATH"

# The hot modules compiled with mypyc (hub/native.py); skipped when the build matches the
# sources. Without a usable build the hub runs the same modules as plain Python (and the
# test suite's tests/test_native.py fails, so CI notices).
mkdir -p var
if ! .venv/bin/python scripts/build_native.py >var/native.log 2>&1; then
    tail -20 var/native.log
    echo "compiling the hot modules failed (log: var/native.log); running them as plain Python" >&2
fi
