# Install chia into the active Python 3.11 environment, from a clone of its repository.
# Never by bare name (`pip install chia`): on PyPI that name is an unrelated project.
set -eu
cd "${CHIA_REPO:-.}"  # the root of your clone of the chia repository
python -m pip install "$@" \
    ./packages/chia-dispatch ./packages/chia-bypass-cache ./packages/chia-placement \
    ./packages/chia-tools ./packages/chia-ops ./packages/chia
