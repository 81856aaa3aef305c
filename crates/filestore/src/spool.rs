//! [`Spool`]: the file side of a `BlobWriter`, so that hashing and writing run side by side.
//!
//! SHA-256 is the slowest step of an upload (about 1.4 GB/s on the bench machine) and cannot
//! be split; writing to the page cache is the next. The writer hashes each chunk on its own
//! thread and gathers the bytes into buffers of [`BUFFER`]; full buffers go to a thread that
//! writes them (and asks for early writeback, `writeback.rs`), at most [`IN_FLIGHT`] at a time,
//! so memory stays bounded. The thread starts with the first full buffer: a blob smaller than
//! one buffer is written by the caller in `finish` and costs no thread.

use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::writeback::Writeback;

/// Bytes gathered before they go to the file.
const BUFFER: usize = 1 << 20;
/// Full buffers waiting for the file thread.
const IN_FLIGHT: usize = 4;

/// Where a blob's bytes go: gathered here, written inline or by the file thread.
pub(crate) struct Spool {
    buffer: Vec<u8>,
    state: State,
}

enum State {
    /// No thread yet: the file is still ours.
    Inline(File),
    /// The file thread owns the file until it is joined.
    Threaded {
        buffers: SyncSender<Vec<u8>>,
        thread: JoinHandle<std::io::Result<File>>,
    },
    /// Finished, or the file thread failed.
    Done,
}

impl Spool {
    pub(crate) fn new(file: File) -> Spool {
        Spool {
            buffer: Vec::with_capacity(BUFFER.min(64 << 10)),
            state: State::Inline(file),
        }
    }

    /// Takes bytes; a full buffer goes to the file thread (started on first need).
    pub(crate) fn write(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        while !chunk.is_empty() {
            let room = BUFFER - self.buffer.len();
            let take = room.min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == BUFFER {
                let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(BUFFER));
                self.hand_over(full)?;
            }
        }
        Ok(())
    }

    /// Writes what is left, waits for the file thread, and returns the file (not yet synced).
    pub(crate) fn finish(mut self) -> std::io::Result<File> {
        let rest = std::mem::take(&mut self.buffer);
        match std::mem::replace(&mut self.state, State::Done) {
            State::Inline(mut file) => {
                file.write_all(&rest)?;
                Ok(file)
            }
            State::Threaded { buffers, thread } => {
                // A failed thread has dropped its receiver; its own error is in the join.
                let _ = buffers.send(rest);
                drop(buffers);
                join(thread)
            }
            State::Done => Err(std::io::Error::other("the blob's file was already closed")),
        }
    }

    fn hand_over(&mut self, full: Vec<u8>) -> std::io::Result<()> {
        if let State::Inline(_) = self.state {
            let State::Inline(file) = std::mem::replace(&mut self.state, State::Done) else {
                return Err(std::io::Error::other("the blob's file was already closed"));
            };
            let (buffers, incoming) = sync_channel(IN_FLIGHT);
            let thread = std::thread::Builder::new()
                .name("blob-writer".into())
                .spawn(move || write_all(file, incoming))?;
            self.state = State::Threaded { buffers, thread };
        }
        let State::Threaded { buffers, .. } = &self.state else {
            return Err(std::io::Error::other("the blob's file was already closed"));
        };
        if buffers.send(full).is_err() {
            // The thread stopped on an error: collect it.
            if let State::Threaded { thread, .. } = std::mem::replace(&mut self.state, State::Done)
            {
                join(thread)?;
            }
            return Err(std::io::Error::other("the blob's file thread stopped"));
        }
        Ok(())
    }
}

/// The file thread: writes buffers in order until the writer hangs up.
fn write_all(mut file: File, incoming: Receiver<Vec<u8>>) -> std::io::Result<File> {
    let mut writeback = Writeback::default();
    let mut written = 0u64;
    while let Ok(buffer) = incoming.recv() {
        file.write_all(&buffer)?;
        written += buffer.len() as u64;
        writeback.note(&file, written);
    }
    Ok(file)
}

fn join(thread: JoinHandle<std::io::Result<File>>) -> std::io::Result<File> {
    thread
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the blob's file thread panicked")))
}
