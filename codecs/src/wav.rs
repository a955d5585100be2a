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

/// A two-channel call recording written as the call goes: caller left,
/// agent right, one 20 ms frame pair at a time.
///
/// The header is rewritten every [`StereoRecorder::FLUSH_FRAMES`] frames
/// (hound's `flush`), so after a crash the file is a valid WAV holding all
/// but the last second or so.
pub struct StereoRecorder {
    path: PathBuf,
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    frames: u32,
}

impl std::fmt::Debug for StereoRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StereoRecorder")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

impl StereoRecorder {
    /// Frames between header updates (1 s).
    pub const FLUSH_FRAMES: u32 = 50;

    /// Create (truncate) `path`, recording at `rate`.
    pub fn create(path: impl AsRef<Path>, rate: SampleRate) -> Result<Self, WavError> {
        let path = path.as_ref().to_owned();
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate.hz(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|source| WavError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(StereoRecorder {
            path,
            writer,
            frames: 0,
        })
    }

    /// Append one frame pair; the shorter side is padded with silence.
    pub fn write(&mut self, caller: &[i16], agent: &[i16]) -> Result<(), WavError> {
        let n = caller.len().max(agent.len());
        let path = &self.path;
        let io = |source| WavError::Io {
            path: path.clone(),
            source,
        };
        for i in 0..n {
            let l = caller.get(i).copied().unwrap_or(0);
            let r = agent.get(i).copied().unwrap_or(0);
            self.writer.write_sample(l).map_err(io)?;
            self.writer.write_sample(r).map_err(io)?;
        }
        self.frames += 1;
        if self.frames % Self::FLUSH_FRAMES == 0 {
            self.writer.flush().map_err(io)?;
        }
        Ok(())
    }

    /// Frame pairs written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Write the final header and close the file.
    pub fn finish(self) -> Result<PathBuf, WavError> {
        let path = self.path;
        self.writer.finalize().map_err(|source| WavError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_recorder_interleaves_and_survives_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("call.wav");
        let mut rec = StereoRecorder::create(&p, SampleRate::Hz8000).unwrap();
        let caller = [100i16; 160];
        let agent = [-7i16; 160];
        for _ in 0..StereoRecorder::FLUSH_FRAMES {
            rec.write(&caller, &agent).unwrap();
        }
        // Not finished (as after a crash): the flushed second is readable.
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.spec().channels, 2);
        let s: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s.len(), 2 * 160 * StereoRecorder::FLUSH_FRAMES as usize);
        assert_eq!(&s[..4], &[100, -7, 100, -7]);
        rec.write(&caller[..80], &agent).unwrap();
        let path = rec.finish().unwrap();
        let r = hound::WavReader::open(path).unwrap();
        let s: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(
            s.len(),
            2 * 160 * (StereoRecorder::FLUSH_FRAMES as usize + 1)
        );
        assert_eq!(&s[s.len() - 2..], &[0, -7]);
    }

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
