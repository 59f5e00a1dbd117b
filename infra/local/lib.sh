# Helpers shared by services.sh and stack.sh (sourced, not run). The sourcing script sets
# STATE_FILE (a KEY=VALUE file) and VENV (a Python venv) first.
# shellcheck shell=bash disable=SC2154

# The usage block: the script's header comment, up to `set -euo`.
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
}

# Value of KEY in a file of KEY=VALUE / export KEY=VALUE lines (empty if absent).
read_kv() {
    local file=$1 key=$2
    [[ -f $file ]] || return 0
    sed -n "s/^\(export \)\{0,1\}$key=//p" "$file" | tail -n1
}

# Set (or, with an empty value, remove) KEY in the state file, atomically.
set_state() {
    local key=$1 value=${2-} tmp
    tmp=$(mktemp "$STATE_FILE.XXXXXX")
    if [[ -f $STATE_FILE ]]; then grep -v "^$key=" "$STATE_FILE" >"$tmp" || true; fi
    if [[ -n $value ]]; then printf '%s=%s\n' "$key" "$value" >>"$tmp"; fi
    mv -f "$tmp" "$STATE_FILE"
}

tcp_listening() { # host port
    # shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# A free TCP port on 127.0.0.1.
free_port() {
    "$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}
