#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the RFC 4475 torture messages
# (../shared/testdata/rfc4475 relative to the repository root), plus a few
# Digest header values for sip_auth. Safe to re-run; corpus/ is git-ignored.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../shared/testdata/rfc4475"
if [ ! -d "$src" ]; then
    echo "seed.sh: $src not found (expected ../shared/testdata/rfc4475 next to the repo)" >&2
    exit 1
fi

for target in sip_datagram sip_stream sip_auth; do
    mkdir -p "$here/corpus/$target"
    cp "$src"/*.dat "$here/corpus/$target/"
done

# sip_stream reads a split position from the first byte: also seed two
# messages back to back, split in the middle, and with CRLF keep-alives.
printf '\200' > "$here/corpus/sip_stream/two-messages"
cat "$src/wsinv.dat" "$src/dblreq.dat" >> "$here/corpus/sip_stream/two-messages"
printf '\100\r\n\r\n' > "$here/corpus/sip_stream/keepalive-then-message"
cat "$src/esc01.dat" >> "$here/corpus/sip_stream/keepalive-then-message"

a="$here/corpus/sip_auth"
printf '%s' 'Digest username="alice", realm="trunk.vocelio.test", nonce="$NONCE", uri="sip:+15550100@trunk.vocelio.test;user=phone", response="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", algorithm=SHA-256, cnonce="c0ffee", qop=auth, nc=00000001' > "$a/credentials-sha256"
printf '%s' 'Digest username="alice", realm="trunk.vocelio.test", nonce="$NONCE", uri="sip:+15550100@trunk.vocelio.test;user=phone", response="0123456789abcdef0123456789abcdef"' > "$a/credentials-md5-legacy"
printf '%s' 'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"' > "$a/challenge-rfc2617"
printf '%s' 'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' > "$a/challenge-rfc7616"
printf 'Mu\\"fa\001Circle Of Life\0010a4f113b' > "$a/round-trip-credentials"

# sdp: offers and answers as carriers and softphones send them.
d="$here/corpus/sdp"
mkdir -p "$d"
printf 'v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n' > "$d/carrier"
printf 'v=0\r\no=bob 2 2 IN IP4 198.51.100.7\r\ns=Talk\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 7078 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\nm=video 9078 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\n' > "$d/softphone"
printf 'v=0\no=- 3 3 IN IP4 0.0.0.0\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 6000 RTP/AVP 0\na=sendonly\n' > "$d/hold"
sed -n '/^v=0/,$p' "$src/sdp01.dat" > "$d/rfc4475-sdp01"

# twilio: first byte = flags (bit 0: valid start first, bit 1: drop the port),
# then one frame per line; \001 binary, \002<ms> timers, \003<id> a mark.
t="$here/corpus/twilio"
mkdir -p "$t"
start='{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"agent":"a"}},"streamSid":"MZ1"}'
media() { printf '{"event":"media","sequenceNumber":"%s","media":{"track":"inbound","chunk":"%s","timestamp":"%s","payload":"%s"},"streamSid":"MZ1"}\n' "$1" "$2" "$3" "$4"; }
{
    printf '\000{"event":"connected","protocol":"Call","version":"1.0.0"}\n%s\n' "$start"
    media 2 1 0 '/wB/gP8AAAD//w=='
    media 3 3 40 '//////////8='
    media 4 2 20 'AAECAwQFBgc='
    printf '\002\024\n\003\007\n\002\024\n'
    printf '{"event":"mark","sequenceNumber":"5","streamSid":"MZ1","mark":{"name":"7"}}\n'
    printf '{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"6","dtmf":{"track":"inbound_track","digit":"5"}}\n'
    printf '{"event":"stop","sequenceNumber":"7","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}'
} > "$t/session"
{
    printf '\001'
    media 2 1 0 'not base64!'
    printf '{"event":"media","media":{"chunk":1}}\n{broken\n\001\377\376\n{"event":"nope"}\n%s\n' "$start"
    media 3 9 180 '/////w=='
    printf '\002\310'
} > "$t/bad-input"
printf '\000%s' "$start" | sed 's/audio\/x-mulaw/audio\/l16/' > "$t/wrong-format"
printf '\003%s\n\003\001\n\002\000\n\002\377' "$start" > "$t/dropped-port"

for target in sip_datagram sip_stream sip_auth sdp twilio; do
    echo "corpus/$target: $(ls "$here/corpus/$target" | wc -l) files"
done

# rtp: datagrams from the media port (RTP, RTCP compounds, telephone-events).
r="$here/corpus/rtp"
mkdir -p "$r"
hdr='\200\000\000\001\000\000\000\240\021\042\063\104'
printf "$hdr"'UUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUU' > "$r/pcmu"
printf '\200\345\000\002\000\000\001\100\021\042\063\104\005\212\003\040' > "$r/telephone-event-end"
printf '\262\000\000\001\000\000\000\240\000\000\000\011\000\000\000\001\000\000\000\002\276\336\000\001\020\252\000\000\001\002\003\000\000\003' > "$r/csrc-extension-padding"
ssrc='\000\000\000\007'
block='\021\042\063\104\031\377\377\375\000\001\002\003\000\000\000\021\252\273\314\335\000\001\000\000'
sdes='\201\312\000\002'"$ssrc"'\001\001a\000'
printf '\201\311\000\007'"$ssrc$block$sdes"'\201\313\000\001'"$ssrc" > "$r/rr-sdes-bye"
printf '\200\310\000\006'"$ssrc"'\350\361\043\105\200\000\000\000\000\002\161\000\000\000\003\350\000\002\161\000'"$sdes" > "$r/sr-sdes"
echo "corpus/rtp: $(ls "$r" | wc -l) files"
