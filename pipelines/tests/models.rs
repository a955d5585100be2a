//! Real models on real speech: whisper, Piper and Silero loaded from the
//! models folder `scripts/setup.sh` fills (`VOCELIO_MODELS_DIR` overrides).

use std::path::PathBuf;
use std::sync::OnceLock;
use vocelio_codecs::g711::Law;
use vocelio_codecs::resample::FrameResampler;
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_pipelines::brain::normalise;
use vocelio_pipelines::models::test_model_dir;
use vocelio_pipelines::stt::{SpeechToText, WhisperModel};
use vocelio_pipelines::tts::Voice;
use vocelio_pipelines::vad::{segments, SegmenterConfig, SileroVad};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audio")
        .join(name)
}

fn stt(model: WhisperModel) -> &'static SpeechToText {
    static F16: OnceLock<SpeechToText> = OnceLock::new();
    static Q8: OnceLock<SpeechToText> = OnceLock::new();
    let cell = match model {
        WhisperModel::TinyEn => &F16,
        WhisperModel::TinyEnQ8 => &Q8,
    };
    cell.get_or_init(|| {
        SpeechToText::load(&test_model_dir(), model).expect("whisper model (run scripts/setup.sh)")
    })
}

/// Resample a whole clip frame by frame, as the engine does on the wire.
fn resample_clip(pcm: &[i16], from: SampleRate, to: SampleRate) -> Vec<i16> {
    let mut r = FrameResampler::new(from, to).unwrap();
    let n = from.samples_per_frame();
    let mut out = Vec::with_capacity(pcm.len() * to.hz() as usize / from.hz() as usize + n);
    let mut frame_out = AudioFrame::silent(to, MediaTime::ZERO);
    let mut padded = pcm.to_vec();
    // Flush the resampler's delay with trailing silence, then drop the leading delay.
    padded.resize(pcm.len() + n * 4 - pcm.len() % n, 0);
    for (i, chunk) in padded.chunks_exact(n).enumerate() {
        let f =
            AudioFrame::from_samples(from, MediaTime::ZERO.plus_frames(i as u64), chunk).unwrap();
        r.process(&f, &mut frame_out).unwrap();
        out.extend_from_slice(frame_out.samples());
    }
    out.drain(..r.delay());
    out
}

#[test]
fn whisper_transcribes_fixtures_with_both_weights() {
    for model in [WhisperModel::TinyEn, WhisperModel::TinyEnQ8] {
        let mut w = stt(model).worker(2).unwrap();
        // tiny.en hears espeak's robotic "book" as "work", so the booking
        // sentence is checked on the natural voice and espeak on another clip.
        for (clip, phrases) in [
            (
                "piper_booking.16k.wav",
                &["book an appointment", "tuesday"][..],
            ),
            ("espeak_no.16k.wav", &["no i don't think so"][..]),
            (
                "piper_interrupt.16k.wav",
                &["sorry", "wait", "can i ask something"][..],
            ),
        ] {
            let pcm = vocelio_codecs::wav::read(fixture(clip)).unwrap();
            assert_eq!(pcm.rate, SampleRate::Hz16000);
            let text = normalise(&w.transcribe_i16(&pcm.samples).unwrap());
            for phrase in phrases {
                assert!(
                    text.contains(phrase),
                    "{model:?} {clip}: {phrase:?} not in {text:?}"
                );
            }
            // No hallucinated repetition: about as many words as were said.
            assert!(text.split(' ').count() <= 12, "{model:?} {clip}: {text:?}");
        }
    }
}

#[test]
fn whisper_transcribes_telephone_mu_law_through_the_engine_path() {
    // 8 kHz mu-law, as RTP PCMU / Twilio deliver it -> decode -> 16 kHz -> whisper.
    let mut w = stt(WhisperModel::TinyEn).worker(2).unwrap();
    for (clip, words) in [
        ("piper_booking.8k.ulaw", "book an appointment"),
        ("espeak_yes.8k.ulaw", "yes"),
    ] {
        let ulaw = std::fs::read(fixture(clip)).unwrap();
        let mut pcm8 = vec![0i16; ulaw.len()];
        Law::Mu.decode(&ulaw, &mut pcm8).unwrap();
        let pcm16 = resample_clip(&pcm8, SampleRate::Hz8000, SampleRate::Hz16000);
        let text = normalise(&w.transcribe_i16(&pcm16).unwrap());
        assert!(text.contains(words), "{clip}: {text:?}");
    }
}

#[test]
fn piper_speaks_what_whisper_hears_back() {
    let mut voice = Voice::load(&test_model_dir(), 2).expect("piper voice (run scripts/setup.sh)");
    assert_eq!(voice.rate(), SampleRate::Hz22050);
    // Piper samples noise, so its audio differs run to run. "Your appointment"
    // was misheard as "where pointment" in 2 of 12 syntheses; this sentence
    // was heard right in 36 of 36.
    let pcm = voice
        .synthesize("The appointment is confirmed for Friday morning.")
        .unwrap();
    let secs = pcm.len() as f32 / 22_050.0;
    assert!((1.0..6.0).contains(&secs), "{secs} s of audio");
    let rms = (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
    assert!(rms > 500.0, "audible speech, rms {rms}");
    // 22.05 kHz TTS -> 16 kHz, the path TTS audio takes to STT-side consumers.
    let pcm16 = resample_clip(&pcm, SampleRate::Hz22050, SampleRate::Hz16000);
    let text = normalise(
        &stt(WhisperModel::TinyEn)
            .worker(2)
            .unwrap()
            .transcribe_i16(&pcm16)
            .unwrap(),
    );
    for word in ["appointment", "confirmed", "friday"] {
        assert!(text.contains(word), "missing {word:?} in {text:?}");
    }
    assert!(matches!(
        voice.synthesize("  ...  "),
        Err(vocelio_pipelines::tts::TtsError::EmptyText)
    ));
}

#[test]
fn silero_finds_the_two_utterances() {
    let mut vad = SileroVad::load(&test_model_dir()).expect("silero (run scripts/setup.sh)");
    let clip = vocelio_codecs::wav::read(fixture("two_utterances.16k.wav")).unwrap();
    let first = vocelio_codecs::wav::read(fixture("espeak_yes.16k.wav"))
        .unwrap()
        .samples
        .len() as u64;
    // The clip's utterances are a second apart; the comma pause inside
    // "Yes, that works for me" is ~0.4 s and must not split it.
    let cfg = SegmenterConfig {
        min_silence: 16 * 600,
        ..SegmenterConfig::default()
    };
    let segs = segments(&mut vad, &clip.samples, cfg).unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    // Layout: 0.5 s silence, first clip (0.2 s lead-in), 1 s silence, second clip.
    let ms = |s: u64| s * 1000 / 16_000;
    let first_start = 500 + 200;
    assert!(ms(segs[0].start).abs_diff(first_start) < 150, "{segs:?}");
    let second_clip_start = 500 + ms(first) + 1000;
    assert!(
        ms(segs[1].start) > second_clip_start && ms(segs[1].start) < second_clip_start + 400,
        "{segs:?}"
    );
    assert!(ms(segs[1].start) - ms(segs[0].end) > 800, "{segs:?}");

    // Silence and low noise hold no speech.
    let mut x = 1u32;
    let noise: Vec<i16> = (0..16_000 * 2)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((x >> 16) as i16) / 256
        })
        .collect();
    assert!(segments(&mut vad, &noise, cfg).unwrap().is_empty());
    assert!(segments(&mut vad, &vec![0; 16_000], cfg)
        .unwrap()
        .is_empty());
}

#[test]
fn minilm_embedding_model_and_tokenizer_are_installed() {
    let dir = test_model_dir();
    let model = dir
        .require("minilm", vocelio_pipelines::models::files::MINILM)
        .expect("run scripts/setup.sh");
    vocelio_pipelines::models::init_onnxruntime(&dir).unwrap();
    let session = vocelio_pipelines::models::onnx_session(&model, 1).unwrap();
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    for want in ["input_ids", "attention_mask"] {
        assert!(inputs.contains(&want), "inputs {inputs:?}");
    }
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    assert!(
        outputs.contains(&"last_hidden_state"),
        "outputs {outputs:?}"
    );
    let tok = dir
        .require(
            "minilm tokenizer",
            vocelio_pipelines::models::files::MINILM_TOKENIZER,
        )
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tok).unwrap()).unwrap();
    // A WordPiece vocabulary with the BERT specials the model was trained with.
    let vocab = &json["model"]["vocab"];
    for special in ["[CLS]", "[SEP]", "[PAD]", "[UNK]"] {
        assert!(vocab.get(special).is_some(), "{special} missing");
    }
}
