//! ITU-T G.711 mu-law (PCMU) and A-law (PCMA).
//!
//! Encoding takes 16-bit linear PCM, rounds it to the 14-bit (mu-law) or
//! 13-bit (A-law) linear range G.711 is defined on (round half up, clipped
//! at full scale), then applies the standard segment/quantisation tables.
//! This is the same mapping `sox` uses, and `tests/g711_sox.rs` checks every
//! one of the 65536 inputs against it. Decoding uses a 256-entry table.

/// Errors from the slice codecs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum G711Error {
    /// Input and output are not the same number of samples.
    #[error("G.711 output holds {actual} samples but the input has {expected}")]
    LengthMismatch {
        /// Samples in the input.
        expected: usize,
        /// Room in the output.
        actual: usize,
    },
}

/// RTP payload types (RFC 3551) of the two laws.
pub const PT_PCMU: u8 = 0;
/// See [`PT_PCMU`].
pub const PT_PCMA: u8 = 8;

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law, North America and Japan, Twilio.
    Mu,
    /// A-law, the rest of the world.
    A,
}

/// Bit length of `v` (0 for 0).
#[inline]
const fn bit_len(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// Encode one 16-bit sample to mu-law.
#[inline]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    // 16 -> 14 bits, round half up, clip at the top.
    let mut v = (sample as i32 + 2) >> 2;
    if v > 8191 {
        v = 8191;
    }
    let (mut mag, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
    if mag > 8159 {
        mag = 8159;
    }
    let mag = (mag + 0x21) as u32;
    let seg = bit_len(mag).saturating_sub(6);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// Encode one 16-bit sample to A-law.
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // 16 -> 13 bits, round half up, clip at the top.
    let mut v = (sample as i32 + 4) >> 3;
    if v > 4095 {
        v = 4095;
    }
    let (mag, mask) = if v >= 0 {
        (v as u32, 0xD5u8)
    } else {
        ((-v - 1) as u32, 0x55u8)
    };
    let seg = bit_len(mag).saturating_sub(5);
    let quant = if seg < 2 { mag >> 1 } else { mag >> seg };
    let code = (seg << 4) | (quant & 0x0F);
    (code as u8) ^ mask
}

const fn ulaw_to_linear_slow(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0F) as i32) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

const fn alaw_to_linear_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Law::Mu => ulaw_to_linear_slow(i as u8),
            Law::A => alaw_to_linear_slow(i as u8),
        };
        i += 1;
    }
    table
}

static ULAW_TO_LINEAR: [i16; 256] = build_table(Law::Mu);
static ALAW_TO_LINEAR: [i16; 256] = build_table(Law::A);

/// Decode one mu-law byte.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decode one A-law byte.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

fn check(expected: usize, actual: usize) -> Result<(), G711Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(G711Error::LengthMismatch { expected, actual })
    }
}

impl Law {
    /// The law's static RTP payload type.
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Mu => PT_PCMU,
            Law::A => PT_PCMA,
        }
    }

    /// Encode `pcm` into `out` (one byte per sample, same length).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> Result<(), G711Error> {
        check(pcm.len(), out.len())?;
        match self {
            Law::Mu => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = linear_to_ulaw(s);
                }
            }
            Law::A => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = linear_to_alaw(s);
                }
            }
        }
        Ok(())
    }

    /// Decode `payload` into `out` (same length).
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> Result<(), G711Error> {
        check(payload.len(), out.len())?;
        let table = match self {
            Law::Mu => &ULAW_TO_LINEAR,
            Law::A => &ALAW_TO_LINEAR,
        };
        for (o, &c) in out.iter_mut().zip(payload) {
            *o = table[c as usize];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // Silence, and full scale, from the G.711 tables.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            let a = alaw_to_linear(code);
            assert_eq!(linear_to_alaw(a), code, "A-law code {code:#04x}");
            let u = ulaw_to_linear(code);
            // mu-law has two codes for zero (0x7F, 0xFF); both decode to 0.
            let back = linear_to_ulaw(u);
            if code == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "mu-law code {code:#04x}");
            }
        }
    }

    #[test]
    fn slice_lengths_must_match() {
        let mut out = [0u8; 3];
        assert_eq!(
            Law::Mu.encode(&[0; 4], &mut out),
            Err(G711Error::LengthMismatch {
                expected: 4,
                actual: 3
            })
        );
    }

    proptest! {
        // Quantisation error is at most half a step, and steps grow with the
        // magnitude (4 mantissa bits): about |x|/32, plus the rounding to 13/14
        // bits. Past the top decision level the codec clips (32124 / 32256).
        #[test]
        fn round_trip_error_is_within_half_a_step(s in any::<i16>()) {
            let x = i32::from(s);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let bound = x.abs() / 32 + 12;
            if x.abs() <= 31_000 {
                prop_assert!((u - x).abs() <= bound, "mu {} -> {}", x, u);
                prop_assert!((a - x).abs() <= bound, "A {} -> {}", x, a);
            } else {
                prop_assert!((u - x).abs() <= 1_024 && (a - x).abs() <= 1_024);
            }
        }

        #[test]
        fn encode_is_monotonic(a in any::<i16>(), b in any::<i16>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(ulaw_to_linear(linear_to_ulaw(lo)) <= ulaw_to_linear(linear_to_ulaw(hi)));
            prop_assert!(alaw_to_linear(linear_to_alaw(lo)) <= alaw_to_linear(linear_to_alaw(hi)));
        }

        #[test]
        fn slices_round_trip(pcm in proptest::collection::vec(any::<i16>(), 0..400)) {
            for law in [Law::Mu, Law::A] {
                let mut enc = vec![0u8; pcm.len()];
                law.encode(&pcm, &mut enc).unwrap();
                let mut dec = vec![0i16; pcm.len()];
                law.decode(&enc, &mut dec).unwrap();
                let mut enc2 = vec![0u8; pcm.len()];
                law.encode(&dec, &mut enc2).unwrap();
                let mut dec2 = vec![0i16; pcm.len()];
                law.decode(&enc2, &mut dec2).unwrap();
                // Decoding is a fixed point of encode/decode.
                prop_assert_eq!(&dec, &dec2);
            }
        }
    }
}
