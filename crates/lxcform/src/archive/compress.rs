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
/// bzip2's own block at level 9.
const BZIP2_BLOCK: usize = 900_000;
/// zstd level (the `zstd` command's default).
const ZSTD_LEVEL: i32 = 3;
/// xz preset (the `xz` command's default).
const XZ_PRESET: u32 = 6;
/// How long liblzma may wait for a busy worker before it returns without progress.
const XZ_TIMEOUT_MS: u32 = 100;

/// The threads that compress, fed block by block. Dropped without [`Sink::finish`] (an
/// archive that failed or was interrupted, thrown away), they stop at the next block or write
/// instead of compressing what is queued, and the drop waits for them to end: a caller that
/// goes on to fork (a clean-up guard destroying a container runs hooks, lvm, zfs) must be
/// single-threaded again by then.
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
            .spawn({
                let abort = abort.clone();
                move || compress(compression, rx, out, abort)
            })?;
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
        // Abort first: the end of the stream must not read as a finished archive.
        if self.handle.is_some() {
            self.abort.store(true, Ordering::SeqCst);
        }
        self.tx = None;
        // The thread stops at its next block or write (its file is being removed); with the
        // sender gone it cannot wait for a block, and its writes go to a regular file, so the
        // join ends. liblzma's and libzstd's workers are joined as their encoders are
        // dropped, the gzip and bzip2 chunk threads by `Running`.
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The error of a compressor that gives up because the archive is abandoned.
fn abandoned(abort: &AtomicBool) -> io::Result<()> {
    if abort.load(Ordering::SeqCst) {
        return Err(io::Error::other("archive abandoned"));
    }
    Ok(())
}

/// The next block to compress; `None` at the end of the stream, an error once the archive is
/// abandoned (so that what is queued is not compressed for nothing).
fn next_block(rx: &Receiver<Vec<u8>>, abort: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
    let block = rx.recv().ok();
    abandoned(abort)?;
    Ok(block)
}

/// Compresses one chunk; may give up once the flag says the archive is abandoned.
type ChunkFn = fn(&[u8], &AtomicBool) -> io::Result<Vec<u8>>;

fn compress(
    compression: Compression,
    rx: Receiver<Vec<u8>>,
    mut out: HashingWriter,
    abort: Arc<AtomicBool>,
) -> io::Result<Written> {
    let next = || next_block(&rx, &abort);
    match compression {
        Compression::None => {
            while let Some(block) = next()? {
                out.write_all(&block)?;
            }
        }
        Compression::Gzip => in_parallel(next, &mut out, GZIP_CHUNK, gzip_chunk, &abort)?,
        Compression::Bzip2 => in_parallel(next, &mut out, BZIP2_CHUNK, bzip2_chunk, &abort)?,
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            enc.multithread(threads() as u32)?;
            enc.include_checksum(true)?;
            while let Some(block) = next()? {
                enc.write_all(&block)?;
            }
            out = enc.finish()?;
        }
        Compression::Xz => xz(next, &mut out, &abort)?,
    }
    out.finish()
}

/// xz through liblzma's multi-threaded encoder, driven here rather than through
/// `liblzma::write::XzEncoder`: dropped on an error, that one first finishes the stream, which
/// compresses the blocks in progress (24 MiB each: seconds) for a file that is thrown away.
/// The timeout lets a call that waits for a busy worker come back to see `abort`; dropping
/// the stream then stops the workers within 16 KiB of input and joins them.
fn xz(
    mut next: impl FnMut() -> io::Result<Option<Vec<u8>>>,
    out: &mut HashingWriter,
    abort: &AtomicBool,
) -> io::Result<()> {
    use liblzma::stream::{Action, Check, MtStreamBuilder, Status};
    let mut stream = MtStreamBuilder::new()
        .threads(threads() as u32)
        .preset(XZ_PRESET)
        .check(Check::Crc64)
        .timeout_ms(XZ_TIMEOUT_MS)
        .encoder()?;
    let mut buf = Vec::with_capacity(1 << 20);
    // Feeds `input` (or finishes), writes what came out; returns the input taken.
    let mut code = |input: &[u8], action: Action| -> io::Result<(usize, Status)> {
        abandoned(abort)?;
        let before = stream.total_in();
        let status = stream.process_vec(input, &mut buf, action)?;
        out.write_all(&buf)?;
        buf.clear();
        Ok(((stream.total_in() - before) as usize, status))
    };
    while let Some(block) = next()? {
        let mut at = 0;
        while at < block.len() {
            at += code(&block[at..], Action::Run)?.0;
        }
    }
    while code(&[], Action::Finish)?.1 != Status::StreamEnd {}
    Ok(())
}

/// Compresses chunks of `chunk` bytes on up to [`threads`] threads at once and writes the
/// results in order.
fn in_parallel(
    mut next: impl FnMut() -> io::Result<Option<Vec<u8>>>,
    out: &mut HashingWriter,
    chunk: usize,
    f: ChunkFn,
    abort: &Arc<AtomicBool>,
) -> io::Result<()> {
    let mut running = Running {
        max: threads(),
        chunks: VecDeque::new(),
        abort: abort.clone(),
    };
    let mut pending: Vec<u8> = Vec::new();
    while let Some(block) = next()? {
        if pending.is_empty() && block.len() >= chunk {
            running.submit(block, f, out)?;
            continue;
        }
        pending.extend_from_slice(&block);
        if pending.len() >= chunk {
            running.submit(std::mem::take(&mut pending), f, out)?;
        }
    }
    if !pending.is_empty() {
        running.submit(pending, f, out)?;
    }
    while running.write_next(out)? {}
    Ok(())
}

/// Chunks being compressed, oldest first. Dropped on an error, it waits for those still
/// running rather than leave them behind (see [`Sink`]).
struct Running {
    max: usize,
    chunks: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    abort: Arc<AtomicBool>,
}

impl Running {
    /// Starts compressing `data`, once fewer than `max` chunks are in flight.
    fn submit(&mut self, data: Vec<u8>, f: ChunkFn, out: &mut HashingWriter) -> io::Result<()> {
        if self.chunks.len() >= self.max {
            self.write_next(out)?;
        }
        let abort = self.abort.clone();
        let handle = std::thread::Builder::new()
            .name("lxcform-chunk".into())
            .spawn(move || f(&data, &abort))?;
        self.chunks.push_back(handle);
        Ok(())
    }

    /// Writes the oldest chunk once compressed; `false` when none is left.
    fn write_next(&mut self, out: &mut HashingWriter) -> io::Result<bool> {
        let Some(h) = self.chunks.pop_front() else {
            return Ok(false);
        };
        let data = h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))?;
        out.write_all(&data)?;
        Ok(true)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for h in self.chunks.drain(..) {
            let _ = h.join();
        }
    }
}

/// One gzip member. (libdeflate compresses a chunk in one call of a few milliseconds: it is
/// not given up midway.)
pub fn gzip_chunk(data: &[u8], _abort: &AtomicBool) -> io::Result<Vec<u8>> {
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

/// One bzip2 stream, given up between two of bzip2's blocks once the archive is abandoned
/// (a chunk takes a second or more).
pub fn bzip2_chunk(data: &[u8], abort: &AtomicBool) -> io::Result<Vec<u8>> {
    let mut enc = bzip2::write::BzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        bzip2::Compression::new(BZIP2_LEVEL),
    );
    for piece in data.chunks(BZIP2_BLOCK) {
        abandoned(abort)?;
        enc.write_all(piece)?;
    }
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
    use crate::archive::test_threads;
    use std::fs::{File, OpenOptions};
    use std::io::Read;
    use std::time::{Duration, Instant};

    /// `len` bytes that do not compress (xorshift).
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn open_for_writing(path: &str) -> File {
        OpenOptions::new().write(true).open(path).unwrap()
    }

    #[test]
    fn a_sink_dropped_mid_stream_leaves_no_thread_running() {
        let _serial = test_threads::serial();
        let block = noise(BLOCK_SIZE);
        for (_, c) in Compression::ALL {
            let out = HashingWriter::new(open_for_writing("/dev/null"));
            let mut sink = Sink::spawn(c, out).unwrap();
            // For xz, more than a block (24 MiB), so that one is being compressed.
            let blocks = if c == Compression::Xz { 32 } else { 8 };
            for _ in 0..blocks {
                sink.send(block.clone(), &mut || Ok(())).unwrap();
            }
            // As when reading the rootfs fails: the tar writer and its sink are dropped. The
            // threads stop rather than compress what they hold.
            let t0 = Instant::now();
            drop(sink);
            let took = t0.elapsed();
            assert_eq!(
                test_threads::left(),
                0,
                "{}: threads left running",
                c.as_str()
            );
            assert!(
                took < Duration::from_secs(3),
                "{}: drop took {took:?}",
                c.as_str()
            );
        }
    }

    #[test]
    fn a_sink_whose_file_fails_leaves_no_thread_running() {
        let _serial = test_threads::serial();
        let block = noise(BLOCK_SIZE);
        // Not xz, whose first write comes after a 24 MiB block, nor bzip2, after a 4 MiB
        // chunk: both slow to compress from noise (chunks_in_flight_… covers bzip2's way).
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            // Every write to /dev/full fails (ENOSPC).
            let mut sink =
                Sink::spawn(c, HashingWriter::new(open_for_writing("/dev/full"))).unwrap();
            let mut failed = (0..64).any(|_| sink.send(block.clone(), &mut || Ok(())).is_err());
            if failed {
                assert_eq!(
                    test_threads::left(),
                    0,
                    "{}: threads left running",
                    c.as_str()
                );
            } else {
                failed = sink.finish().is_err();
            }
            assert!(failed, "{}: writing to /dev/full failed", c.as_str());
            assert_eq!(
                test_threads::left(),
                0,
                "{}: threads left running",
                c.as_str()
            );
        }
    }

    #[test]
    fn chunks_in_flight_when_a_write_fails_are_waited_for() {
        if threads() < 2 {
            eprintln!("SKIP: one core: never two chunks in flight");
            return;
        }
        let _serial = test_threads::serial();
        // The first chunk is ready at once and its write fails; the second is still being
        // "compressed" (the first byte says for how many tenths of a second).
        let mut blocks = vec![vec![0u8], vec![5u8], vec![0u8]].into_iter();
        fn slow(d: &[u8], _abort: &AtomicBool) -> io::Result<Vec<u8>> {
            std::thread::sleep(Duration::from_millis(100 * u64::from(d[0])));
            // Past HashingWriter's 1 MiB buffer, so that the write reaches the file.
            Ok(vec![0; 2 << 20])
        }
        let mut out = HashingWriter::new(open_for_writing("/dev/full"));
        let abort = Arc::new(AtomicBool::new(false));
        let r = in_parallel(|| Ok(blocks.next()), &mut out, 1, slow, &abort);
        assert!(r.is_err(), "writing to /dev/full fails");
        assert_eq!(test_threads::left(), 0, "a chunk thread left running");
    }

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
        let _serial = test_threads::serial();
        for (_, c) in Compression::ALL {
            round_trip(c);
        }
    }

    #[test]
    fn parallel_gzip_is_a_valid_multi_member_stream() {
        let data = sample();
        let members: Vec<u8> = data
            .chunks(GZIP_CHUNK)
            .flat_map(|c| gzip_chunk(c, &AtomicBool::new(false)).unwrap())
            .collect();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&members[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }
}
