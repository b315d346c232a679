//! The compressing end of the pipeline: a thread that takes tar blocks in order, compresses
//! them and writes the result through a [`HashingWriter`].
//!
//! - gzip and bzip2 compress independent chunks on every core and write them as consecutive
//!   gzip members / bzip2 streams, as pigz and pbzip2 do; `gzip -d`, `bzip2 -d`, GNU tar and
//!   Python's tarfile read such files as one stream. gzip uses libdeflate.
//! - xz uses liblzma's multi-threaded encoder (independent blocks in one stream).
//! - zstd uses libzstd's multi-threaded mode (one frame, with a checksum, as `zstd -T0`).
//! - none writes the tar as it is.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::output::{HashingWriter, Written};
use crate::spec::Compression;

/// Size of the blocks the tar writer hands over.
pub const BLOCK_SIZE: usize = 1 << 20;

/// gzip level (as `gzip -6`, the default of `tar czf`).
const GZIP_LEVEL: i32 = 6;
/// gzip chunk compressed by one thread.
const GZIP_CHUNK: usize = 1 << 20;
/// bzip2 level (`bzip2 -9`, its default).
const BZIP2_LEVEL: u32 = 9;
/// bzip2 chunk: several of bzip2's own 900 kB blocks.
const BZIP2_CHUNK: usize = 4 << 20;
/// zstd level (the `zstd` command's default).
const ZSTD_LEVEL: i32 = 3;
/// xz preset (the `xz` command's default).
const XZ_PRESET: u32 = 6;

/// The threads that compress, fed block by block. Dropped without [`Sink::finish`], they
/// stop at their next write instead of compressing what is queued (an archive that failed or
/// was interrupted is thrown away: no need to wait for it).
pub struct Sink {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<io::Result<Written>>>,
    abort: Arc<AtomicBool>,
}

/// How many threads compress: every core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Sink {
    /// Starts the compressing thread writing to `out`.
    pub fn spawn(compression: Compression, out: HashingWriter) -> io::Result<Sink> {
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let abort = Arc::new(AtomicBool::new(false));
        let out = out.abort_on(abort.clone());
        let handle = std::thread::Builder::new()
            .name("lxcform-compress".into())
            .spawn(move || compress(compression, rx, out))?;
        Ok(Sink {
            tx: Some(tx),
            handle: Some(handle),
            abort,
        })
    }

    /// Hands over the next block. While the compressors are busy, calls `waiting` every
    /// 10 ms (to see signals and report progress while compression sets the pace); an error
    /// from it ends the wait.
    pub fn send(
        &mut self,
        block: Vec<u8>,
        waiting: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        use std::sync::mpsc::TrySendError;
        let mut block = block;
        let sent = loop {
            let Some(tx) = self.tx.as_ref() else {
                break false;
            };
            match tx.try_send(block) {
                Ok(()) => break true,
                Err(TrySendError::Disconnected(_)) => break false,
                Err(TrySendError::Full(b)) => {
                    block = b;
                    waiting()?;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        };
        if sent {
            return Ok(());
        }
        // The thread ended early: its error says why.
        Err(self.join().err().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped early")
        }))
    }

    fn join(&mut self) -> io::Result<Written> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("compressor thread panicked"))),
            None => Err(io::Error::other("compressor already finished")),
        }
    }

    /// Ends the stream and waits for everything to be written.
    pub fn finish(mut self) -> io::Result<Written> {
        self.join()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.handle.is_some() {
            // The thread fails its next write and ends on its own; its file is being removed.
            self.abort.store(true, Ordering::SeqCst);
        }
        self.tx = None;
    }
}

fn compress(
    compression: Compression,
    rx: Receiver<Vec<u8>>,
    mut out: HashingWriter,
) -> io::Result<Written> {
    match compression {
        Compression::None => {
            for block in rx {
                out.write_all(&block)?;
            }
        }
        Compression::Gzip => in_parallel(rx, &mut out, GZIP_CHUNK, gzip_chunk)?,
        Compression::Bzip2 => in_parallel(rx, &mut out, BZIP2_CHUNK, bzip2_chunk)?,
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            enc.multithread(threads() as u32)?;
            enc.include_checksum(true)?;
            for block in rx {
                enc.write_all(&block)?;
            }
            out = enc.finish()?;
        }
        Compression::Xz => {
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads() as u32)
                .preset(XZ_PRESET)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(io::Error::other)?;
            let mut enc = liblzma::write::XzEncoder::new_stream(out, stream);
            for block in rx {
                enc.write_all(&block)?;
            }
            out = enc.finish()?;
        }
    }
    out.finish()
}

/// Compresses chunks of `chunk` bytes on up to [`threads`] threads at once and writes the
/// results in order.
fn in_parallel(
    rx: Receiver<Vec<u8>>,
    out: &mut HashingWriter,
    chunk: usize,
    f: fn(&[u8]) -> io::Result<Vec<u8>>,
) -> io::Result<()> {
    let max = threads();
    let mut running: VecDeque<JoinHandle<io::Result<Vec<u8>>>> = VecDeque::new();
    let mut pending: Vec<u8> = Vec::new();
    let submit = |data: Vec<u8>,
                  running: &mut VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
                  out: &mut HashingWriter|
     -> io::Result<()> {
        if running.len() >= max {
            write_next(running, out)?;
        }
        running.push_back(std::thread::spawn(move || f(&data)));
        Ok(())
    };
    for block in rx {
        if pending.is_empty() && block.len() >= chunk {
            submit(block, &mut running, out)?;
            continue;
        }
        pending.extend_from_slice(&block);
        if pending.len() >= chunk {
            submit(std::mem::take(&mut pending), &mut running, out)?;
        }
    }
    if !pending.is_empty() {
        submit(pending, &mut running, out)?;
    }
    while !running.is_empty() {
        write_next(&mut running, out)?;
    }
    Ok(())
}

fn write_next(
    running: &mut VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    out: &mut HashingWriter,
) -> io::Result<()> {
    if let Some(h) = running.pop_front() {
        let data = h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))?;
        out.write_all(&data)?;
    }
    Ok(())
}

/// One gzip member.
pub fn gzip_chunk(data: &[u8]) -> io::Result<Vec<u8>> {
    let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
        .map_err(|_| io::Error::other("invalid gzip level"))?;
    let mut c = libdeflater::Compressor::new(level);
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// One bzip2 stream.
pub fn bzip2_chunk(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = bzip2::write::BzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        bzip2::Compression::new(BZIP2_LEVEL),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// A reader of any archive lxcform or the Python module writes: the compression is told by
/// the first bytes, not by the file name.
pub fn decoder<R: io::BufRead + Send + 'static>(mut r: R) -> io::Result<Box<dyn io::Read + Send>> {
    let head = r.fill_buf()?.to_vec();
    Ok(match sniff(&head) {
        Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Some(Compression::Bzip2) => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Some(Compression::Xz) => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        _ => Box::new(r),
    })
}

/// The compression whose magic number starts `head` (`None` for anything else, e.g. a plain
/// tar).
pub fn sniff(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Compression::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        // Compressible but not trivial: 1.25 MiB of numbered lines (two gzip chunks).
        let mut v = Vec::new();
        let mut i = 0u64;
        while v.len() < 5 << 18 {
            v.extend_from_slice(format!("line {i} {}\n", i * 7919 % 1000).as_bytes());
            i += 1;
        }
        v
    }

    fn round_trip(c: Compression) {
        let dir = std::env::temp_dir().join(format!(
            "lxcform-compress-{}-{}",
            c.as_str(),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let file = std::fs::File::create(&path).unwrap();
        let data = sample();
        let mut sink = Sink::spawn(c, HashingWriter::new(file)).unwrap();
        for chunk in data.chunks(BLOCK_SIZE / 3) {
            sink.send(chunk.to_vec(), &mut || Ok(())).unwrap();
        }
        let written = sink.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(written.size, raw.len() as u64);
        assert_eq!(sniff(&raw), (c != Compression::None).then_some(c));
        let mut back = Vec::new();
        decoder(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "{} round trip differs", c.as_str());
        if c != Compression::None {
            assert!(raw.len() < data.len() / 3, "{} does compress", c.as_str());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_compression_round_trips() {
        for (_, c) in Compression::ALL {
            round_trip(c);
        }
    }

    #[test]
    fn parallel_gzip_is_a_valid_multi_member_stream() {
        let data = sample();
        let members: Vec<u8> = data
            .chunks(GZIP_CHUNK)
            .flat_map(|c| gzip_chunk(c).unwrap())
            .collect();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&members[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }
}
