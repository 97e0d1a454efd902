# From your machine (or the head): run the loop on the cluster, look at it, profile it, cancel a hung run.
set -eu
export RAY_ADDRESS="${RAY_ADDRESS:?set RAY_ADDRESS=head-host:6379}"  # every chia command and ray.init() use it
export RAY_AUTH_MODE=token                                          # with the cluster's token:
export RAY_AUTH_TOKEN_PATH="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"  # or RAY_AUTH_TOKEN=...

# The loop, its code shipped to the workers, profiled into ./profile.
chia run --working-dir . --profile profile loop.py

# What the cluster has: nodes, free CPUs, chia's actors, the tasks running now.
chia status

# The profile: one row per function (profile/chia-report.html has the timeline).
chia profile summary profile

# A hung simulation: once its simulator runs, cancel kills every process tree chia tracks.
rm -f hang.started
chia run hang.py "$PWD/hang.started" 2>hang.log &
until [ -s hang.started ]; do sleep 0.5; done
chia status                        # the task: function, node, state, age, the simulator's process tree
chia cancel --all --yes --grace 5  # or only some: --tag 'sim_*', --function hang, --task ID (shows them, asks)
wait $! || echo "hang.py ended: $(grep -o 'RuntimeError: the simulator was killed.*' hang.log | tail -n 1)"
