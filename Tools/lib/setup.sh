# Sourced by the Tools/ commands: installs what the project needs on a fresh Debian machine
# with Swift, and nothing that is already there. Idempotent and quiet when all is present.

bookswarm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages: the build needs libsodium and SQLite headers and pkg-config; the
# multi-host tests need iproute2, nftables, iptables and conntrack; the chat test needs tmux.
BOOKSWARM_APT_PACKAGES=(libsodium-dev libsqlite3-dev pkg-config iproute2 nftables iptables conntrack tmux python3-pip)
# PyPI test oracles: an independent Noise implementation, and libsodium from Python.
BOOKSWARM_PIP_PACKAGES=(noiseprotocol pynacl)

bookswarm_setup() {
    local missing=()
    for p in "${BOOKSWARM_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            echo "setup: installing ${missing[*]}" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq >/dev/null
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "setup: missing Debian packages (${missing[*]}); run as root or: sudo apt-get install ${missing[*]}" >&2
        fi
    fi
    local pip_missing=()
    python3 -c "import noise" 2>/dev/null || pip_missing+=(noiseprotocol)
    python3 -c "import nacl" 2>/dev/null || pip_missing+=(pynacl)
    if [ ${#pip_missing[@]} -gt 0 ]; then
        echo "setup: pip installing ${pip_missing[*]}" >&2
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_missing[@]}" >/dev/null 2>&1 \
            || python3 -m pip install -q --break-system-packages "${pip_missing[@]}" >/dev/null \
            || echo "setup: could not pip install ${pip_missing[*]}; interop tests will be skipped" >&2
    fi
}
