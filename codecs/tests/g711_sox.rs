//! G.711 against an independent implementation: sox (Debian), over every
//! 16-bit input and every code byte.

use std::path::Path;
use std::process::Command;
use vocelio_codecs::g711::Law;

fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox is not installed: run scripts/setup.sh (Debian package sox)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn all_inputs(dir: &Path) -> (Vec<i16>, String) {
    let pcm: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let path = dir.join("all.s16");
    std::fs::write(&path, bytes).unwrap();
    (pcm, path.to_string_lossy().into_owned())
}

fn check_law(law: Law, sox_encoding: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (pcm, input) = all_inputs(dir.path());

    // Encode: every one of the 65536 inputs. -D: no dither, sox must quantise plainly.
    let coded = dir.path().join("coded.raw");
    let coded_s = coded.to_string_lossy().into_owned();
    sox(&[
        "-D",
        "-t",
        "raw",
        "-r",
        "8000",
        "-e",
        "signed",
        "-b",
        "16",
        "-L",
        "-c",
        "1",
        &input,
        "-t",
        "raw",
        "-e",
        sox_encoding,
        "-b",
        "8",
        "-c",
        "1",
        &coded_s,
    ]);
    let reference = std::fs::read(&coded).unwrap();
    assert_eq!(reference.len(), pcm.len());
    let mut ours = vec![0u8; pcm.len()];
    law.encode(&pcm, &mut ours).unwrap();
    let mismatches: Vec<_> = pcm
        .iter()
        .zip(ours.iter().zip(&reference))
        .filter(|(_, (a, b))| a != b)
        .map(|(s, (a, b))| format!("{s}: ours {a:#04x} sox {b:#04x}"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{:?} encode differs from sox on {} inputs, e.g. {:?}",
        law,
        mismatches.len(),
        &mismatches[..mismatches.len().min(8)]
    );

    // Decode: every code byte.
    let codes: Vec<u8> = (0..=255).collect();
    let codes_path = dir.path().join("codes.raw");
    std::fs::write(&codes_path, &codes).unwrap();
    let decoded = dir.path().join("decoded.s16");
    sox(&[
        "-D",
        "-t",
        "raw",
        "-r",
        "8000",
        "-e",
        sox_encoding,
        "-b",
        "8",
        "-c",
        "1",
        &codes_path.to_string_lossy(),
        "-t",
        "raw",
        "-e",
        "signed",
        "-b",
        "16",
        "-L",
        "-c",
        "1",
        &decoded.to_string_lossy(),
    ]);
    let reference: Vec<i16> = std::fs::read(&decoded)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut ours = vec![0i16; 256];
    law.decode(&codes, &mut ours).unwrap();
    assert_eq!(ours, reference, "{law:?} decode differs from sox");
}

#[test]
fn mu_law_is_bit_exact_with_sox() {
    check_law(Law::Mu, "mu-law");
}

#[test]
fn a_law_is_bit_exact_with_sox() {
    check_law(Law::A, "a-law");
}
