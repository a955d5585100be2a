#!/usr/bin/env bash
# Set up (idempotent) and run every test: unit, property, real-model,
# sox/sipp-backed integration tests, and each benchmark once in test mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
command -v cargo >/dev/null || . "$HOME/.cargo/env"
export VOCELIO_MODELS_DIR=${VOCELIO_MODELS_DIR:-$PWD/models}
start=$(date +%s)
cargo fmt --all -- --check
# One build of each heavy C++ dependency (whisper.cpp, espeak-ng): the tests
# build first, then clippy runs with the test profile and reuses those
# build-script outputs (clippy first would make the test build compile them again).
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
cargo clippy --workspace --all-targets --locked --profile test -- -D warnings
echo "[test] all tests passed in $(( $(date +%s) - start ))s (after setup)"
