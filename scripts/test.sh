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
# Tests first, then doc tests, then clippy. The doc tests and clippy re-run the
# build scripts of ort-sys/espeak-rs-sys (and clippy whisper-rs-sys's) because
# cargo does not share those runs across these invocations; on a clean 2-core
# box the whole run takes about 9-10 minutes, of which clippy ~2.
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
cargo clippy --workspace --all-targets --locked --profile test -- -D warnings
echo "[test] all tests passed in $(( $(date +%s) - start ))s (after setup)"
