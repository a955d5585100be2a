#!/usr/bin/env bash
# SIP call-rate harness: starts `vocelio serve` (release) on loopback and runs
# sipp's uac scenario (INVITE/100/200/ACK/BYE) at rising rates, each for a
# bounded number of calls, printing a markdown table: rate, calls, failed,
# CPU seconds used by vocelio and by sipp. Stops at the first rate with
# failures. Usage: scripts/sip_rate.sh [seconds per step, default 10] [rates...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}; shift || true
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(250 500 1000 1500 2000 3000 4000)
bin=target/release/vocelio
[ -x "$bin" ] || cargo build --release --locked --bin vocelio
work=$(mktemp -d); trap 'kill $vpid 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip=$(free_port); http=$(free_port)
VOCELIO__SIP__LISTEN=127.0.0.1:$sip VOCELIO__HTTP__LISTEN=127.0.0.1:$http VOCELIO__STORAGE__DATA_DIR="$work/data" \
  VOCELIO__SIP__MAX_CALLS=20000 VOCELIO__SIP__MAX_TRANSACTIONS=${MAX_TRANSACTIONS:-400000} VOCELIO__LOG__FILTER=warn "$bin" serve > "$work/vocelio.log" 2>&1 &
vpid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/health" >/dev/null 2>&1 && break; sleep 0.1; done
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
echo "| calls/s | calls | successful | failed | vocelio CPU s | sipp CPU s | vocelio CPU % of one core |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for rate in "${rates[@]}"; do
  calls=$((rate * secs))
  before=$(cpu $vpid)
  stat="$work/stat-$rate.csv"
  set +e
  /usr/bin/time -f "%U %S" -o "$work/sipp-time" sipp 127.0.0.1:$sip -sn uac -s 15550100001 -i 127.0.0.1 -p "$(free_port)" \
    -mp "$(free_port)" -r "$rate" -m "$calls" -l $((rate * 4)) -nostdin -timeout $((secs * 4 + 30))s -timeout_error \
    -trace_stat -stf "$stat" -fd 1 > "$work/sipp-$rate.out" 2>&1
  set -e
  after=$(cpu $vpid)
  ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++)if($i=="SuccessfulCall(C)")c=i} END{print $c}' "$stat")
  bad=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++)if($i=="FailedCall(C)")c=i} END{print $c}' "$stat")
  sipp_cpu=$(tail -n1 "$work/sipp-time" | awk "{print \$1+\$2}")
  used=$(awk -v a="$after" -v b="$before" 'BEGIN{printf "%.2f", a-b}')
  pct=$(awk -v u="$used" -v s="$secs" 'BEGIN{printf "%.0f", 100*u/s}')
  echo "| $rate | $calls | ${ok:-0} | ${bad:-?} | $used | $sipp_cpu | $pct% |"
  [ "${bad:-1}" = "0" ] || break
done
