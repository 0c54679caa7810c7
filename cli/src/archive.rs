//! The directory archive stream: a directory is written as a tar stream, which is cut into
//! content-defined chunks (FastCDC 2020) for a dynamic index; restore reads the chunks back in
//! index order and unpacks the stream. Unchanged files give the same bytes, hence the same
//! chunks, so an incremental backup re-uploads little; large unchanged files are not even read
//! (see [`crate::filecache`]).

use std::io::{self, Read, Write};
use std::sync::mpsc::SyncSender;

use store::digest::Digest;

use crate::exit::CliError;
use crate::filecache::{FileCache, FileChunks, NewCache, Stamp};
use crate::tarwrite::{Selection, Source, TreeWriter};

/// Smallest, average and largest chunk of a directory stream.
pub const CDC_MIN: u32 = 512 << 10;
/// See [`CDC_MIN`].
pub const CDC_AVG: u32 = 2 << 20;
/// See [`CDC_MIN`].
pub const CDC_MAX: u32 = 8 << 20;

/// What the archive writer hands the chunker.
pub enum Piece {
    /// Stream bytes.
    Bytes(Vec<u8>),
    /// End the current chunk here (before and after a large file's contents).
    Cut,
    /// The contents of this file follow, up to [`Piece::FileEnd`].
    FileStart(String, Stamp),
    /// The file's contents ended; `true` if they may be cached (not changed while read).
    FileEnd(bool),
    /// A file's contents are these chunks of the previous snapshot (not read).
    Reuse(String, Stamp, FileChunks),
}

/// The archive writer's output: buffered stream bytes and markers, sent to the chunker.
pub struct Sink {
    sender: SyncSender<Piece>,
    buffer: Vec<u8>,
}

impl Sink {
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        self.flush_buffer()?;
        self.sender
            .send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the chunker stopped"))
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffer);
        self.sender
            .send(Piece::Bytes(bytes))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the chunker stopped"))
    }

    /// Ends the current chunk.
    pub fn cut(&mut self) -> io::Result<()> {
        self.send(Piece::Cut)
    }

    /// Marks the start of a file's contents.
    pub fn file_start(&mut self, name: String, stamp: Stamp) -> io::Result<()> {
        self.send(Piece::FileStart(name, stamp))
    }

    /// Marks the end of a file's contents.
    pub fn file_end(&mut self, cacheable: bool) -> io::Result<()> {
        self.send(Piece::FileEnd(cacheable))
    }

    /// A file's contents as known chunks.
    pub fn reuse(&mut self, name: String, stamp: Stamp, chunks: FileChunks) -> io::Result<()> {
        self.send(Piece::Reuse(name, stamp, chunks))
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= SEND_SIZE {
            self.flush_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

/// Pending stream bytes that start a batch of chunks (hashed and compressed in parallel).
const BATCH_BYTES: usize = 4 * CDC_MAX as usize;

/// Bytes the writer buffers before sending them.
const SEND_SIZE: usize = 1 << 20;

/// Where the chunks of a directory stream go.
pub trait ChunkSink {
    /// New chunks of the stream, in order; returns their digests.
    fn chunks(&mut self, batch: &[&[u8]]) -> Result<Vec<Digest>, CliError>;
    /// A chunk of the previous snapshot, appended without reading it.
    fn reuse(&mut self, digest: &Digest, len: u64) -> Result<(), CliError>;
}

/// The chunker's state: bytes not yet cut, and the file whose contents are being chunked.
struct Chunker<'a, S: ChunkSink> {
    sink: &'a mut S,
    pending: Vec<u8>,
    file: Option<(String, Stamp, FileChunks)>,
    cache: NewCache,
    total: u64,
}

impl<S: ChunkSink> Chunker<'_, S> {
    /// Cuts the pending bytes; all of them when `all`, else all but a tail that may still grow.
    fn chunk(&mut self, all: bool) -> Result<(), CliError> {
        let cuts = fastcdc::v2020::FastCDC::new(&self.pending, CDC_MIN, CDC_AVG, CDC_MAX);
        let mut cuts: Vec<(usize, usize)> = cuts.map(|c| (c.offset, c.length)).collect();
        if !all {
            cuts.pop();
        }
        let batch: Vec<&[u8]> = cuts
            .iter()
            .map(|&(offset, length)| &self.pending[offset..offset + length])
            .collect();
        let digests = self.sink.chunks(&batch)?;
        for (digest, &(_, length)) in digests.into_iter().zip(&cuts) {
            if let Some((_, _, chunks)) = &mut self.file {
                chunks.push((digest, length as u64));
            }
            self.total += length as u64;
        }
        let start = cuts.last().map_or(0, |&(offset, length)| offset + length);
        self.pending.drain(..start);
        Ok(())
    }

    fn take(&mut self, piece: Piece) -> Result<(), CliError> {
        match piece {
            Piece::Bytes(bytes) => {
                self.pending.extend_from_slice(&bytes);
                if self.pending.len() >= BATCH_BYTES {
                    self.chunk(false)?;
                }
            }
            Piece::Cut => self.chunk(true)?,
            Piece::FileStart(name, stamp) => self.file = Some((name, stamp, Vec::new())),
            Piece::FileEnd(cacheable) => {
                if let Some((name, stamp, chunks)) = self.file.take()
                    && cacheable
                {
                    self.cache.insert(name, &stamp, &chunks);
                }
            }
            Piece::Reuse(name, stamp, chunks) => {
                for (digest, len) in &chunks {
                    self.sink.reuse(digest, *len)?;
                    self.total += len;
                }
                self.cache.insert(name, &stamp, &chunks);
            }
        }
        Ok(())
    }
}

/// What [`chunk_directory`] did.
pub struct Chunked {
    /// Stream length.
    pub total: u64,
    /// Entries skipped or changed while read.
    pub warnings: Vec<String>,
    /// Files read without reuse, reused.
    pub files_read: u64,
    /// See [`Chunked::files_read`].
    pub files_reused: u64,
    /// The file cache for the next backup.
    pub cache: NewCache,
}

/// Streams the sources as one tar stream (see [`crate::tarwrite`]), written by a thread, and
/// cuts it into content-defined chunks handed to `sink` in order. Large files start and end
/// chunks of their own, so that an unchanged one is reused from `cache` without being read.
pub fn chunk_directory(
    sources: Vec<Source>,
    selection: Selection,
    cache: FileCache,
    sink: &mut impl ChunkSink,
) -> Result<Chunked, CliError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(8);
    let out = Sink {
        sender,
        buffer: Vec::new(),
    };
    let writer = TreeWriter::new(out, selection, cache);
    let producer = std::thread::spawn(move || writer.write_all(&sources));
    let mut chunker = Chunker {
        sink,
        pending: Vec::new(),
        file: None,
        cache: NewCache::default(),
        total: 0,
    };
    let mut result = Ok(());
    for piece in receiver.iter() {
        if let Err(err) = chunker.take(piece) {
            result = Err(err);
            break;
        }
    }
    drop(receiver);
    // The receiver is gone once the loop ends, so a producer still writing gets a broken pipe.
    let produced = producer
        .join()
        .map_err(|_| CliError::Failure("the archive writer panicked".into()))?;
    result?;
    chunker.chunk(true)?;
    let written =
        produced.map_err(|err| CliError::Failure(format!("writing the archive stream: {err}")))?;
    Ok(Chunked {
        total: chunker.total,
        warnings: written.warnings,
        files_read: written.files_read,
        files_reused: written.files_reused,
        cache: chunker.cache,
    })
}

/// Reads a sequence of chunks as one stream.
pub struct ChunkStream<F> {
    next: F,
    buffer: Vec<u8>,
    position: usize,
    done: bool,
}

impl<F: FnMut() -> io::Result<Option<Vec<u8>>>> ChunkStream<F> {
    /// A stream over the chunks `next` returns, until it returns `None`.
    pub fn new(next: F) -> ChunkStream<F> {
        ChunkStream {
            next,
            buffer: Vec::new(),
            position: 0,
            done: false,
        }
    }
}

impl<F: FnMut() -> io::Result<Option<Vec<u8>>>> Read for ChunkStream<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            match (self.next)()? {
                Some(chunk) => {
                    self.buffer = chunk;
                    self.position = 0;
                }
                None => self.done = true,
            }
        }
        let n = out.len().min(self.buffer.len() - self.position);
        out[..n].copy_from_slice(&self.buffer[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}
