#!/usr/bin/env bash
# The test suite on a CUDA machine: every test whose models use device "auto" runs on the GPU there.
# Usage: bench/cuda_suite.sh [LOG] [WORKERS] [SECONDS]
#   runs pytest with pytest-xdist (when installed) and prints each failing test's name as it happens, so a
#   run cut off by its time limit still says which tests failed; the whole output goes to LOG.
# Needs a python3 with torch (CUDA build), torchvision, the package's dependencies and pytest; Ray tests skip
# when Ray is absent, real-data tests when OLVIDO_UTKFACE is unset. Run from the repository root.
set -o pipefail
log=${1:-cuda-suite.log}
workers=${2:-8}
seconds=${3:-900}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: this check needs one'; \
print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 2
parallel=()
python3 -c "import xdist" 2>/dev/null && parallel=(-n "$workers")
timeout "$seconds" python3 -m pytest -v -p no:cacheprovider -W ignore "${parallel[@]}" -rfE tests 2>&1 \
    | tee "$log" | grep --line-buffered -E "FAILED|ERROR|[0-9]+ (passed|failed)"
