#!/usr/bin/env bash
# GPU benchmark run for a lent accelerator machine: one command, under 8 minutes, nothing from the network.
#
#   bash benchmarks/perf/gpu.sh                # JSON + logs under $OUT (default benchmarks/results)
#   OUT=/tmp/res PYTHON=python3 bash benchmarks/perf/gpu.sh
#
# Steps (each under `timeout`, all together under GPU_BENCH_SECONDS, default 500 s):
#   1. environment check: JAX backend, devices, package versions     -> $OUT/gpu-env.log
#   2. benchmarks/perf/rollout.py, B = 1 .. 131072 on a GPU (1 .. 16384 elsewhere) -> $OUT/rollout-<backend>.json
#   3. benchmarks/perf/md_vs_lss.py (LSS part only when OpenMM is missing; on a GPU the MD also runs on OpenMM's
#      CUDA platform, implicit and explicit solvent, when its plugin loads)  -> $OUT/md_vs_lss-<backend>.json
#   4. benchmarks/perf/decoding.py --quick --chain (--chain left out with GPU_BENCH_QUICK=1): decode frames/s of
#      every decoder setting, alanine dipeptide and Trp-cage         -> $OUT/decoding-<backend>.json
#      On a GPU it decodes 262 144 frames and also times blocks of 4096 … 262 144 rows per call (--blocks).
#   5. benchmarks/perf/generation.py --quick, only if that file exists     -> $OUT/generation-<backend>.json
#      (GPU_BENCH_GENERATION_FULL=1 runs it in full; it may then not finish inside the budget)
#   6. chain_round_trip (only when named in GPU_BENCH_STEPS): benchmarks/studies/trp_cage_round_trip.py, the chain
#      decoder trained for 50 and 200 epochs, 3 x 64 and 4 x 128 features, sampled at T = 0.7, 0.85, 1 -> $OUT/trp_cage_round_trip-<backend>.json
# GPU_BENCH_STEPS picks steps (default "rollout md_vs_lss decoding generation"; env always runs), e.g.
#   GPU_BENCH_STEPS="decoding md_vs_lss chain_round_trip" GPU_BENCH_NO_MD=1 bash benchmarks/perf/gpu.sh
# GPU_BENCH_NO_MD=1 times only the LSS side of md_vs_lss (its MD rates are in an earlier run's JSON).
# Each step's output is also in $OUT/gpu-<step>.log. At most 8 files come back from a lent machine's $OUT, and this
# writes 11: run it with OUT set to a scratch folder and pack that into one file, as
#   OUT=/tmp/gpu bash benchmarks/perf/gpu.sh; tar czf "$RESULTS/gpu.tgz" -C /tmp/gpu .
# A step that fails or times out is recorded in $OUT/gpu-summary.txt and the next one still runs; the exit
# status is the number of failed steps. GPU_BENCH_QUICK=1 passes --quick to every benchmark (a smoke test that
# also runs on a CPU-only machine in about 5 minutes).
#
# What the machine needs (nothing is installed from the network):
#   * a Python with a CUDA-enabled jax, flax, optax, numpy, scipy, tqdm: $PYTHON, else ./.venv/bin/python when it
#     imports jax, else python3 (the lent image's python3 has jax[cuda13], flax, optax, torch);
#   * mdtraj and deeptime (not in the lent image), optionally openmm and openmm-cuda-13 (OpenMM's CUDA platform):
#     carry wheels in ./.whl (ignored by git, e.g. `echo /.whl/ >> .git/info/exclude` and `python3 -m pip download
#     --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
#     --platform manylinux_2_34_x86_64 --platform manylinux2014_x86_64 -d .whl mdtraj==1.11.1.post2 deeptime==0.5.0
#     openmm==8.6.1 openmm-cuda-13==8.6.1`: 27 MB, what the first GPU run carried); this script installs
#     ./.whl/*.whl into /tmp/site with --no-index;
#   * the repository itself: lss_jax is imported from the working tree (PYTHONPATH), no pip install needed.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
TOTAL=${GPU_BENCH_SECONDS:-500}
export PYTHONUNBUFFERED=1
QUICK=()
[ "${GPU_BENCH_QUICK:-0}" = 1 ] && QUICK=(--quick)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G ".whl/*.whl" >/dev/null; then
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    then export PYTHONPATH="/tmp/site:$PYTHONPATH"
    else echo "gpu.sh: installing the carried wheels in .whl failed; continuing without them" >&2
    fi
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import jax" 2>/dev/null; then PYTHON=.venv/bin/python
    else PYTHON=python3
    fi
fi

STEPS=" ${GPU_BENCH_STEPS:-rollout md_vs_lss decoding generation} "
wanted() { [[ "$STEPS" == *" $1 "* ]]; }

SUMMARY="$OUT/gpu-summary.txt"
: >"$SUMMARY"
FAILED=0

# step NAME CAP_SECONDS COMMAND...: run COMMAND under timeout min(CAP, time left), log to $OUT/gpu-NAME.log
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((TOTAL - SECONDS))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 10 ]; then
        echo "$name: skipped (no time left)" | tee -a "$SUMMARY"
        FAILED=$((FAILED + 1))
        return
    fi
    local start=$SECONDS
    echo "== $name (timeout ${limit}s): $*" >&2
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT/gpu-$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -ne 0 ] && FAILED=$((FAILED + 1))
    local what="rc=$rc"
    [ "$rc" -eq 124 ] && what="timed out after ${limit}s"
    echo "$name: $what, $((SECONDS - start)) s" | tee -a "$SUMMARY"
}

step env 30 "$PYTHON" -c "
import os, platform, jax
print('python', platform.python_version(), 'jax', jax.__version__, 'backend', jax.default_backend())
print('devices', jax.devices())
import lss_jax
print('lss_jax', lss_jax.__version__, 'from', os.path.dirname(lss_jax.__file__))
for name in ('flax', 'optax', 'mdtraj', 'openmm', 'torch'):
    try:
        print(name, __import__(name).__version__)
    except Exception as err:
        print(name, 'missing:', type(err).__name__, err)
"
BACKEND=$("$PYTHON" -c "import jax; print(jax.default_backend())" 2>/dev/null || echo unknown)
[ "$BACKEND" = gpu ] || echo "gpu.sh: warning: JAX backend is '$BACKEND', not gpu" | tee -a "$SUMMARY"

ROLL_ARGS=()
[ "$BACKEND" = gpu ] && ROLL_ARGS+=(--batch 1 1024 16384 65536 131072 --work 1.6e7)
wanted rollout && step rollout 120 "$PYTHON" benchmarks/perf/rollout.py "${ROLL_ARGS[@]}" "${QUICK[@]}" --out "$OUT/rollout-$BACKEND.json"

MD_ARGS=()
if [ "${GPU_BENCH_NO_MD:-0}" = 1 ] || ! "$PYTHON" -c "import openmm" 2>/dev/null; then MD_ARGS+=(--no-md)
elif [ "$BACKEND" = gpu ]; then MD_ARGS+=(--md-platforms CUDA CPU Reference --explicit-platforms CUDA CPU)
fi
wanted md_vs_lss && step md_vs_lss 150 "$PYTHON" benchmarks/perf/md_vs_lss.py "${QUICK[@]}" "${MD_ARGS[@]}" --out "$OUT/md_vs_lss-$BACKEND.json"

DEC_ARGS=(--quick)
[ "$BACKEND" = gpu ] && DEC_ARGS=(--frames 262144 --repeats 2 --blocks 4096 16384 65536 262144)
[ ${#QUICK[@]} -eq 0 ] && DEC_ARGS+=(--chain)  # the chain decoder's training is too slow for a CPU smoke test
wanted decoding && step decoding 150 "$PYTHON" benchmarks/perf/decoding.py "${DEC_ARGS[@]}" --out "$OUT/decoding-$BACKEND.json"

if ! wanted generation; then :
elif [ -f benchmarks/perf/generation.py ]; then
    GEN_ARGS=()
    HELP=$("$PYTHON" benchmarks/perf/generation.py --help 2>/dev/null)
    # its full run (~4 min on 2 CPU cores) does not fit the budget next to the others: --quick unless asked
    if grep -q -- "--quick" <<<"$HELP" && { [ "${GPU_BENCH_GENERATION_FULL:-0}" != 1 ] || [ ${#QUICK[@]} -gt 0 ]; }; then
        GEN_ARGS+=(--quick)
    fi
    if grep -q -- "--out" <<<"$HELP"; then
        GEN_ARGS+=(--out "$OUT/generation-$BACKEND.json")
    fi
    step generation 60 "$PYTHON" benchmarks/perf/generation.py "${GEN_ARGS[@]}"
else
    echo "generation: skipped (benchmarks/perf/generation.py does not exist)" | tee -a "$SUMMARY"
fi

wanted chain_round_trip && step chain_round_trip 400 "$PYTHON" benchmarks/studies/trp_cage_round_trip.py \
    --decoders chain-wide chain --epochs 200 50 --temperatures 0.7 0.85 1.0 --out "$OUT/trp_cage_round_trip-$BACKEND.json"

echo "total ${SECONDS} s, $FAILED failed step(s)" | tee -a "$SUMMARY"
exit "$FAILED"
