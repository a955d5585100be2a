#!/usr/bin/env bash
# Set up (idempotent) and run the engine with its embedded defaults:
# HTTP on 127.0.0.1:8000, SIP on 127.0.0.1:5060, SQLite in ./data, models from ./models.
# Extra arguments go to `vocelio serve` (e.g. --config vocelio.toml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
command -v cargo >/dev/null || . "$HOME/.cargo/env"
exec cargo run --release --locked --bin vocelio -- serve "$@"
