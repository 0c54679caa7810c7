//! The directory archive stream: a directory is written as a tar stream, which is cut into
//! content-defined chunks (FastCDC 2020) for a dynamic index; restore reads the chunks back in
//! index order and unpacks the stream. Unchanged files give the same bytes, hence the same
//! chunks, so an incremental backup re-uploads little.

use std::io::{self, Read};
use std::path::Path;

use crate::exit::CliError;

/// Smallest, average and largest chunk of a directory stream.
pub const CDC_MIN: u32 = 512 << 10;
/// See [`CDC_MIN`].
pub const CDC_AVG: u32 = 2 << 20;
/// See [`CDC_MIN`].
pub const CDC_MAX: u32 = 8 << 20;

/// Streams `dir` as a tar archive and hands each content-defined chunk to `each`, in order.
/// Returns the stream's length.
pub fn chunk_directory(
    dir: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), CliError>,
) -> Result<u64, CliError> {
    let io_err =
        |what: &str, err: io::Error| CliError::Failure(format!("{what} {}: {err}", dir.display()));
    let (reader, writer) = io::pipe().map_err(|err| io_err("pipe for", err))?;
    let root = dir.to_owned();
    let producer = std::thread::spawn(move || -> io::Result<()> {
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        builder.append_dir_all(".", &root)?;
        builder.finish()
    });
    let mut total = 0u64;
    let mut result = Ok(());
    for chunk in fastcdc::v2020::StreamCDC::new(reader, CDC_MIN, CDC_AVG, CDC_MAX) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                result = Err(CliError::Failure(format!(
                    "reading {}: {err}",
                    dir.display()
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
        .map_err(|_| CliError::Failure(format!("archiving {} panicked", dir.display())))?;
    result?;
    produced.map_err(|err| io_err("archiving", err))?;
    Ok(total)
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

/// Unpacks a directory stream into `target` (created if missing). Entries that would land
/// outside `target` are refused by the tar reader.
pub fn unpack(stream: impl Read, target: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(target)
        .map_err(|err| CliError::Failure(format!("mkdir {}: {err}", target.display())))?;
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive
        .unpack(target)
        .map_err(|err| CliError::Failure(format!("restoring into {}: {err}", target.display())))
}
