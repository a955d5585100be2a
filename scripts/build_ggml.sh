#!/usr/bin/env bash
# Build ggml once, for both llama.cpp (llama-cpp-2) and whisper.cpp (whisper-rs).
#
# Each of those crates vendors its own ggml. Linked into one binary the two
# copies collide (duplicate symbols), and forcing the link with
# --allow-multiple-definition makes llama abort at run time (GGML_ASSERT: one
# copy's structures handed to the other's code). So we build ggml one time,
# from the source llama-cpp-sys-2 vendors (cargo has already downloaded it),
# as static CPU-only libraries into a prefix, and point both crates at it:
# llama-cpp-2 with feature `system-ggml-static`, whisper-rs-sys with
# WHISPER_USE_SYSTEM_GGML=ON, both through CMAKE_PREFIX_PATH, which
# .cargo/config.toml sets to ./.ggml (git-ignored).
#
# Idempotent and cached: the build lands in $VOCELIO_CACHE/ggml/<key>, where
# the key covers the llama-cpp-sys-2 version, this script and the compiler, and
# is then copied into ./.ggml. No network: the crate source comes from
# `cargo fetch --locked`.
#
# CPU flags: GGML_NATIVE=OFF, ggml's portable x86-64 set (SSE4.2, AVX, AVX2,
# FMA, F16C, BMI2; no AVX-512), the same set llama-cpp-sys-2 builds when
# rustc is not told target-cpu=native. VOCELIO_GGML_NATIVE=ON builds for this
# machine's CPU instead (faster on AVX-512 hosts, not portable).
#
# Environment: VOCELIO_CACHE (default ~/.cache/vocelio), VOCELIO_BUILD_JOBS
# (default: all cores), VOCELIO_GGML_NATIVE (default OFF).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VOCELIO_CACHE:-${HOME:-/root}/.cache/vocelio}
PREFIX="$ROOT/.ggml"
NATIVE=${VOCELIO_GGML_NATIVE:-OFF}
JOBS=${VOCELIO_BUILD_JOBS:-$(nproc)}
START=$(date +%s)

log() { printf '[ggml %3ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { printf '[ggml] ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; }
command -v cmake >/dev/null || die "cmake not found (apt-get install cmake)"

# The llama-cpp-sys-2 version Cargo.lock pins, and its downloaded source.
VERSION=$(awk '/^name = "llama-cpp-sys-2"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")
[ -n "$VERSION" ] || die "llama-cpp-sys-2 not found in Cargo.lock"
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
find_src() { compgen -G "$CARGO_HOME/registry/src/*/llama-cpp-sys-2-$VERSION/llama.cpp/ggml/CMakeLists.txt" | head -n1; }
SRC=$(find_src || true)
if [ -z "$SRC" ]; then
  log "cargo fetch (for the llama-cpp-sys-2 $VERSION source)"
  (cd "$ROOT" && cargo fetch --locked -q) || die "cargo fetch failed"
  SRC=$(find_src || true)
  [ -n "$SRC" ] || die "llama-cpp-sys-2-$VERSION not in $CARGO_HOME/registry/src after cargo fetch"
fi
SRC=$(dirname "$SRC")

CC_ID="$(cc -dumpmachine 2>/dev/null || true) cc $(cc -dumpfullversion 2>/dev/null || true) c++ $(c++ -dumpfullversion 2>/dev/null || true)"
KEY=$(printf '%s\n%s\n%s\n%s\n' "$VERSION" "$NATIVE" "$CC_ID" "$(cat "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-16)
STAMP="llama-cpp-sys-2 $VERSION key $KEY native $NATIVE"

if [ -f "$PREFIX/.stamp" ] && [ "$(cat "$PREFIX/.stamp")" = "$STAMP" ]; then
  log "ok: $PREFIX ($STAMP)"
  exit 0
fi

OUT="$CACHE/ggml/$KEY"
if [ -f "$OUT/prefix/.stamp" ]; then
  log "cached: $OUT"
else
  log "building ggml from $SRC (static, CPU only, GGML_NATIVE=$NATIVE, $JOBS jobs)"
  rm -rf "$OUT"
  mkdir -p "$OUT/wrapper"
  # ggml as a subproject of a three-line wrapper: standalone, its CMakeLists
  # wants ggml.pc.in, which the crate does not ship.
  printf 'cmake_minimum_required(VERSION 3.14)\nproject(vocelio_ggml C CXX ASM)\nadd_subdirectory("%s" ggml)\n' \
    "$SRC" >"$OUT/wrapper/CMakeLists.txt"
  cmake -S "$OUT/wrapper" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$OUT/prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DGGML_NATIVE="$NATIVE" -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF \
    -DGGML_BLAS=OFF -DGGML_METAL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF \
    -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF >"$OUT/configure.log" 2>&1 \
    || { tail -n 30 "$OUT/configure.log" >&2; die "cmake configure failed (log: $OUT/configure.log)"; }
  cmake --build "$OUT/build" -j "$JOBS" >"$OUT/build.log" 2>&1 \
    || { tail -n 30 "$OUT/build.log" >&2; die "ggml build failed (log: $OUT/build.log)"; }
  cmake --install "$OUT/build" >"$OUT/install.log" 2>&1 \
    || { tail -n 30 "$OUT/install.log" >&2; die "ggml install failed"; }
  [ -f "$OUT/prefix/lib/cmake/ggml/ggml-config.cmake" ] || die "no ggml-config.cmake in $OUT/prefix"
  echo "$STAMP" >"$OUT/prefix/.stamp"
  rm -rf "$OUT/build"
  log "built ggml in $(( $(date +%s) - START ))s"
fi

rm -rf "$PREFIX.tmp"
cp -a "$OUT/prefix" "$PREFIX.tmp"
rm -rf "$PREFIX"
mv "$PREFIX.tmp" "$PREFIX"
log "installed: $PREFIX (run 'cargo clean -p whisper-rs-sys -p llama-cpp-sys-2' if an older ggml was built into your target dir)"
