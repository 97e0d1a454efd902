# On the head node: token authentication on, a fresh token in a file only you can read, then the head.
# More `ray start` flags (e.g. --temp-dir=DIR, --dashboard-port=PORT) can follow the script's name.
set -eu
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
    mkdir -p "$(dirname "$RAY_AUTH_TOKEN_PATH")"
    (umask 077 && python -c 'import secrets; print(secrets.token_hex(32), end="")' >"$RAY_AUTH_TOKEN_PATH")
fi
ray start --head --port="${RAY_PORT:-6379}" --num-cpus="${NUM_CPUS:-2}" "$@"
