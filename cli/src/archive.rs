//! The directory archive stream: a directory is written as a tar stream, which is cut into
//! content-defined chunks (FastCDC 2020) for a dynamic index; restore reads the chunks back in
//! index order and unpacks the stream. Unchanged files give the same bytes, hence the same
//! chunks, so an incremental backup re-uploads little.

use crate::exit::CliError;
use crate::tarwrite::{Source, TreeWriter};
use std::io::{self, Read};

/// Smallest, average and largest chunk of a directory stream.
pub const CDC_MIN: u32 = 512 << 10;
/// See [`CDC_MIN`].
pub const CDC_AVG: u32 = 2 << 20;
/// See [`CDC_MIN`].
pub const CDC_MAX: u32 = 8 << 20;

/// Streams the sources as one tar stream (see [`crate::tarwrite`]) and hands each
/// content-defined chunk to `each`, in order. Returns the stream's length and the warnings
/// about entries skipped or changed while read.
pub fn chunk_directory(
    sources: Vec<Source>,
    excludes: &[String],
    mut each: impl FnMut(&[u8]) -> Result<(), CliError>,
) -> Result<(u64, Vec<String>), CliError> {
    let io_err = |what: &str, err: io::Error| CliError::Failure(format!("{what}: {err}"));
    let (reader, writer) = io::pipe().map_err(|err| io_err("pipe", err))?;
    let writer = TreeWriter::new(writer, excludes)
        .map_err(|err| CliError::BadInput(format!("bad --exclude pattern: {err}")))?;
    let producer = std::thread::spawn(move || writer.write_all(&sources));
    let mut total = 0u64;
    let mut result = Ok(());
    for chunk in fastcdc::v2020::StreamCDC::new(reader, CDC_MIN, CDC_AVG, CDC_MAX) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                result = Err(CliError::Failure(format!(
                    "reading the archive stream: {err}"
                )));
                break;
            }
        };
        total += chunk.data.len() as u64;
        if let Err(err) = each(&chunk.data) {
            result = Err(err);
            break;
        }
    }
    // The reader is gone once the loop ends, so a producer still writing gets a broken pipe.
    let produced = producer
        .join()
        .map_err(|_| CliError::Failure("the archive writer panicked".into()))?;
    result?;
    let warnings = produced.map_err(|err| io_err("writing the archive stream", err))?;
    Ok((total, warnings))
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
