# On each worker node, with a copy of the head's token file (same path, mode 600): join the head.
set -eu
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
ray start --address="${HEAD_ADDRESS:?set HEAD_ADDRESS=head-host:6379}" --num-cpus="${NUM_CPUS:-2}" "$@"
