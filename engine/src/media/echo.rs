//! A passthrough agent: whatever the caller says comes back, optionally
//! delayed. Used by tests (round trip through the engine) and by the
//! capacity harness. One thread serves every call it is given: it sweeps
//! all ports every few milliseconds, never blocking on any one of them.

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vocelio_codecs::port::{MediaPort, PortEvent};
use vocelio_codecs::AudioFrame;

/// How often the echo thread sweeps its ports.
const SWEEP: Duration = Duration::from_millis(4);

struct Echo {
    port: MediaPort,
    delay: VecDeque<AudioFrame>,
    ended: bool,
}

/// A pool of echo agents on one thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct EchoPool {
    tx: Option<Sender<MediaPort>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoPool {
    /// Start the thread; each call's audio comes back `delay_frames` × 20 ms later.
    pub fn start(delay_frames: usize) -> std::io::Result<EchoPool> {
        let (tx, rx) = unbounded::<MediaPort>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("echo-agents".into())
                .spawn(move || run(rx, delay_frames, &stop))?
        };
        Ok(EchoPool {
            tx: Some(tx),
            stop,
            thread: Some(thread),
        })
    }

    /// Serve a call.
    pub fn add(&self, port: MediaPort) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(port);
        }
    }

    /// A sender to hand ports in from elsewhere.
    pub fn sender(&self) -> Option<Sender<MediaPort>> {
        self.tx.clone()
    }
}

impl Drop for EchoPool {
    fn drop(&mut self) {
        self.tx = None;
        // Senders handed out with `sender()` may outlive the pool: stop by flag.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<MediaPort>, delay_frames: usize, stop: &AtomicBool) {
    let mut calls: Vec<Echo> = Vec::new();
    let mut open = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(port) => calls.push(Echo {
                    port,
                    delay: VecDeque::with_capacity(delay_frames + 1),
                    ended: false,
                }),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !open || stop.load(Ordering::Relaxed) {
            return;
        }
        for c in calls.iter_mut() {
            while let Ok(ev) = c.port.events.try_recv() {
                if matches!(ev, PortEvent::Hangup { .. }) {
                    c.ended = true;
                }
            }
            loop {
                if c.port.outbound_room() == 0 {
                    break;
                }
                match c.port.audio.try_recv() {
                    Ok(frame) if delay_frames == 0 => {
                        if c.port.send_frame(frame).is_err() {
                            c.ended = true;
                            break;
                        }
                    }
                    Ok(frame) => {
                        c.delay.push_back(frame);
                        if c.delay.len() > delay_frames {
                            if let Some(f) = c.delay.pop_front() {
                                if c.port.send_frame(f).is_err() {
                                    c.ended = true;
                                    break;
                                }
                            }
                        }
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        c.ended = true;
                        break;
                    }
                }
            }
        }
        calls.retain(|c| !c.ended);
        std::thread::sleep(SWEEP);
    }
}
