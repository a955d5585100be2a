//! WAV files: fixtures, recordings, model test data.

use crate::frame::{FrameError, SampleRate};
use std::path::{Path, PathBuf};

/// Errors reading or writing WAV files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// hound's error.
        source: hound::Error,
    },
    /// Only 16-bit integer PCM is read.
    #[error("{path}: {bits}-bit {format:?} WAV is not supported (want 16-bit PCM)")]
    Format {
        /// The file.
        path: PathBuf,
        /// Bits per sample in the file.
        bits: u16,
        /// Sample format in the file.
        format: hound::SampleFormat,
    },
    /// The file's rate is not one the engine carries.
    #[error("{path}: {source}")]
    Rate {
        /// The file.
        path: PathBuf,
        /// The rate problem.
        source: FrameError,
    },
}

/// Mono 16-bit PCM read from a WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// The sample rate.
    pub rate: SampleRate,
    /// Samples; stereo files are mixed down to mono.
    pub samples: Vec<i16>,
}

/// Read a 16-bit PCM WAV file (mono, or stereo mixed to mono).
pub fn read(path: impl AsRef<Path>) -> Result<Pcm, WavError> {
    let path = path.as_ref();
    let io = |source| WavError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(io)?;
    let spec = reader.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(WavError::Format {
            path: path.to_owned(),
            bits: spec.bits_per_sample,
            format: spec.sample_format,
        });
    }
    let rate = SampleRate::from_hz(spec.sample_rate).map_err(|source| WavError::Rate {
        path: path.to_owned(),
        source,
    })?;
    let raw = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    let channels = usize::from(spec.channels.max(1));
    let samples = if channels == 1 {
        raw
    } else {
        raw.chunks(channels)
            .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
            .collect()
    };
    Ok(Pcm { rate, samples })
}

/// Write mono 16-bit PCM.
pub fn write(path: impl AsRef<Path>, rate: SampleRate, samples: &[i16]) -> Result<(), WavError> {
    write_channels(path, rate, 1, samples)
}

/// Write interleaved 16-bit PCM with `channels` channels (2 for a call recording: caller left, agent right).
pub fn write_channels(
    path: impl AsRef<Path>,
    rate: SampleRate,
    channels: u16,
    interleaved: &[i16],
) -> Result<(), WavError> {
    let path = path.as_ref();
    let io = |source| WavError::Io {
        path: path.to_owned(),
        source,
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate.hz(),
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(io)?;
    {
        let mut w16 = w.get_i16_writer(interleaved.len() as u32);
        for &s in interleaved {
            w16.write_sample(s);
        }
        w16.flush().map_err(io)?;
    }
    w.finalize().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let s: Vec<i16> = (0..1600).map(|i| (i * 7 % 3000) as i16 - 1500).collect();
        write(&p, SampleRate::Hz16000, &s).unwrap();
        let pcm = read(&p).unwrap();
        assert_eq!(pcm.rate, SampleRate::Hz16000);
        assert_eq!(pcm.samples, s);
        let st: Vec<i16> = s.iter().flat_map(|&x| [x, x]).collect();
        let p2 = dir.path().join("b.wav");
        write_channels(&p2, SampleRate::Hz8000, 2, &st).unwrap();
        assert_eq!(read(&p2).unwrap().samples, s);
    }

    #[test]
    fn missing_and_garbage_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(dir.path().join("nope.wav")),
            Err(WavError::Io { .. })
        ));
        let p = dir.path().join("junk.wav");
        std::fs::write(&p, b"RIFF\x00\x00not a wav").unwrap();
        assert!(read(&p).is_err());
    }
}
