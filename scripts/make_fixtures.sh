#!/usr/bin/env bash
# Regenerate fixtures/audio/: caller-style sentences spoken by espeak-ng and by
# the Piper voice, as 16 kHz 16-bit PCM WAV and as raw 8 kHz mu-law (what RTP
# PCMU and Twilio carry), plus manifest.json with their transcripts.
# Needs scripts/setup.sh to have run (espeak-ng, sox, models). The outputs are
# committed; run this only to change them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/fixtures/audio"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
cd "$ROOT"
cargo build -q --bin vocelio
VOCELIO="$ROOT/target/debug/vocelio"

# id|text
SENTENCES=(
  "booking|Hi, I would like to book an appointment for next Tuesday."
  "numbers|My phone number is five five five, one two three, four five six seven."
  "yes|Yes, that works for me."
  "no|No, I don't think so."
  "interrupt|Sorry, wait, can I ask something?"
  "account|My account number is four eight one five."
)

entries=()
for line in "${SENTENCES[@]}"; do
  id=${line%%|*}; text=${line#*|}
  for voice in espeak piper; do
    name="${voice}_${id}"
    if [ "$voice" = espeak ]; then
      espeak-ng -v en-us -s 155 -w "$TMP/$name.wav" "$text"
    else
      "$VOCELIO" say "$text" --out "$TMP/$name.wav" 2>/dev/null
    fi
    # Telephone band first (300-3400 Hz), as a caller's audio arrives.
    sox -D "$TMP/$name.wav" -r 16000 -c 1 -b 16 "$OUT/$name.16k.wav" sinc 100-3800 pad 0.2 0.3
    sox -D "$OUT/$name.16k.wav" -t raw -r 8000 -c 1 -e mu-law -b 8 "$OUT/$name.8k.ulaw"
    ms=$(soxi -D "$OUT/$name.16k.wav" | awk '{printf "%d", $1*1000}')
    entries+=("{\"id\":\"$name\",\"voice\":\"$voice\",\"text\":\"$text\",\"pcm_16k\":\"$name.16k.wav\",\"ulaw_8k\":\"$name.8k.ulaw\",\"duration_ms\":$ms}")
  done
done

# Two utterances with a second of silence between them, for VAD segmentation.
sox -n -r 16000 -c 1 -b 16 "$TMP/sil1.wav" trim 0 1.0
sox -n -r 16000 -c 1 -b 16 "$TMP/sil05.wav" trim 0 0.5
sox -D "$TMP/sil05.wav" "$OUT/espeak_yes.16k.wav" "$TMP/sil1.wav" "$OUT/piper_no.16k.wav" "$TMP/sil05.wav" "$OUT/two_utterances.16k.wav"
sox -D "$OUT/two_utterances.16k.wav" -t raw -r 8000 -c 1 -e mu-law -b 8 "$OUT/two_utterances.8k.ulaw"
ms=$(soxi -D "$OUT/two_utterances.16k.wav" | awk '{printf "%d", $1*1000}')
entries+=("{\"id\":\"two_utterances\",\"voice\":\"mixed\",\"text\":\"Yes, that works for me. No, I don't think so.\",\"pcm_16k\":\"two_utterances.16k.wav\",\"ulaw_8k\":\"two_utterances.8k.ulaw\",\"duration_ms\":$ms}")

{
  echo '{'
  echo '  "about": "Caller-style speech for tests. 16 kHz 16-bit mono WAV and raw 8 kHz mu-law. Made by scripts/make_fixtures.sh.",'
  echo '  "clips": ['
  n=${#entries[@]}
  for i in "${!entries[@]}"; do
    sep=","; [ "$i" -eq $((n-1)) ] && sep=""
    echo "    ${entries[$i]}$sep"
  done
  echo '  ]'
  echo '}'
} > "$OUT/manifest.json"
python3 -m json.tool "$OUT/manifest.json" >/dev/null
echo "fixtures: $(ls "$OUT" | wc -l) files, $(du -sh "$OUT" | cut -f1)"
