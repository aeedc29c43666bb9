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
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing OS packages: ${need_apt[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
fi

PYTHON="${HUB_PYTHON:-$(command -v python3.11 || command -v python3)}"
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
