//! Reading tar streams: ustar, pax (`x` and `g` headers, `SCHILY.xattr.*`, GNU sparse 0.1
//! and 1.0) and GNU's long names (`L`, `K`), which is what GNU tar writes by default — so
//! archives of the Python module (`tar czf`) read as well as ours.

use std::io::{self, Read};

use super::tar::{Kind, BLOCK};

/// One entry's metadata; its data (if any) is read with [`TarReader::read_data`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, as stored (no trailing slash).
    pub path: Vec<u8>,
    /// The kind; `None` for kinds lxcform does not restore (the type flag is in `flag`).
    pub kind: Option<Kind>,
    /// The raw type flag.
    pub flag: u8,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Symlink target or hard link's archive path.
    pub link: Vec<u8>,
    /// Device numbers.
    pub dev: (u32, u32),
    /// Extended attributes.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For a sparse file: its data regions (in the order their data follows).
    pub sparse: Option<Vec<(u64, u64)>>,
    /// The file's full size (holes included).
    pub size: u64,
}

/// Why a stream is not a tar archive lxcform can read.
fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// Parses an octal field (spaces and NULs around it allowed) or a base-256 one.
fn parse_numeric(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad("numeric field overflows"))?;
        }
        return Ok(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s).map_err(|_| bad("numeric field is not octal"))?;
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("numeric field {s:?} is not octal")))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Parses pax records (`"LEN KEY=VALUE\n"`).
pub fn parse_pax(mut data: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("pax record without length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("pax record length is not a number"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("pax record length is wrong"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("pax record without '='"))?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(v: &[u8], what: &str) -> io::Result<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(format!("pax {what} is not a number")))
}

/// A tar stream being read entry by entry.
pub struct TarReader<R> {
    r: R,
    /// Data bytes of the current entry not yet read.
    left: u64,
    /// Padding after them.
    pad: u64,
    globals: Vec<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<R: Read> TarReader<R> {
    /// Reads a tar stream from `r`.
    pub fn new(r: R) -> TarReader<R> {
        TarReader {
            r,
            left: 0,
            pad: 0,
            globals: Vec::new(),
            done: false,
        }
    }

    fn read_block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.r.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(bad("archive ends in the middle of a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            self.r.read_exact(&mut buf[..want]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    bad("archive ends in the middle of an entry")
                } else {
                    e
                }
            })?;
            n -= want as u64;
        }
        Ok(())
    }

    fn read_body(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 64 << 20 {
            return Err(bad("extended header larger than 64 MiB"));
        }
        let mut v = vec![0u8; size as usize];
        self.r.read_exact(&mut v)?;
        self.skip(super::tar::padding(size) as u64)?;
        Ok(v)
    }

    /// The next entry, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        self.skip(self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        if self.done {
            return Ok(None);
        }
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(h) = self.read_block()? else {
                // Some writers end without the two zero blocks.
                self.done = true;
                return Ok(None);
            };
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = parse_numeric(&h[148..156])
                .map_err(|_| bad("no header checksum: not a tar archive, or corrupt"))?;
            let mut copy = h;
            copy[148..156].fill(b' ');
            let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
            if sum != stored {
                return Err(bad(
                    "header checksum mismatch: not a tar archive, or corrupt",
                ));
            }
            let flag = h[156];
            let size = parse_numeric(&h[124..136])?;
            match flag {
                b'x' => {
                    let body = self.read_body(size)?;
                    pax.extend(parse_pax(&body)?);
                    continue;
                }
                b'g' => {
                    let body = self.read_body(size)?;
                    self.globals.extend(parse_pax(&body)?);
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_body(size)?).to_vec());
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_body(size)?).to_vec());
                    continue;
                }
                b'S' => return Err(bad("old GNU sparse entries are not supported")),
                _ => {}
            }
            let posix = &h[257..263] == b"ustar\0";
            let mut path = cstr(&h[..100]).to_vec();
            if posix && h[345] != 0 {
                path = [cstr(&h[345..500]), b"/", &path].concat();
            }
            let mut e = Entry {
                path,
                kind: Kind::from_flag(flag),
                flag,
                mode: parse_numeric(&h[100..108])? as u32 & 0o7777,
                uid: parse_numeric(&h[108..116])?,
                gid: parse_numeric(&h[116..124])?,
                mtime: parse_numeric(&h[136..148])? as i64,
                link: cstr(&h[157..257]).to_vec(),
                dev: (
                    parse_numeric(&h[329..337])? as u32,
                    parse_numeric(&h[337..345])? as u32,
                ),
                xattrs: Vec::new(),
                sparse: None,
                size,
            };
            if let Some(n) = long_name {
                e.path = n;
            }
            if let Some(l) = long_link {
                e.link = l;
            }
            let mut stored_size = size;
            let mut sparse = SparseKeys::default();
            let records: Vec<(Vec<u8>, Vec<u8>)> =
                self.globals.iter().cloned().chain(pax).collect();
            for (k, v) in records {
                match &k[..] {
                    b"path" => e.path = v,
                    b"linkpath" => e.link = v,
                    b"uid" => e.uid = num(&v, "uid")?,
                    b"gid" => e.gid = num(&v, "gid")?,
                    b"size" => {
                        stored_size = num(&v, "size")?;
                        e.size = stored_size;
                    }
                    b"mtime" => {
                        let s = std::str::from_utf8(&v).unwrap_or("0");
                        let secs = s.split('.').next().unwrap_or("0");
                        e.mtime = num(secs.as_bytes(), "mtime")?;
                    }
                    b"GNU.sparse.major" => sparse.major = Some(num(&v, "sparse major")?),
                    b"GNU.sparse.minor" => sparse.minor = Some(num(&v, "sparse minor")?),
                    b"GNU.sparse.name" => sparse.name = Some(v),
                    b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                        sparse.real_size = Some(num(&v, "sparse size")?)
                    }
                    b"GNU.sparse.map" => sparse.map = Some(v),
                    _ => {
                        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                            e.xattrs.push((name.to_vec(), v));
                        }
                    }
                }
            }
            if e.path.len() > 1 {
                while e.path.ends_with(b"/") {
                    e.path.pop();
                }
            }
            self.left = if matches!(e.kind, Some(Kind::File)) || e.kind.is_none() {
                stored_size
            } else {
                0
            };
            self.pad = super::tar::padding(self.left) as u64;
            if e.kind == Some(Kind::File) {
                self.apply_sparse(&mut e, sparse)?;
            }
            return Ok(Some(e));
        }
    }

    fn apply_sparse(&mut self, e: &mut Entry, s: SparseKeys) -> io::Result<()> {
        if let Some(name) = s.name {
            e.path = name;
        }
        let regions = match (s.major, s.minor, s.map) {
            (Some(1), Some(0), _) => self.read_sparse_map()?,
            (_, _, Some(map)) => {
                let nums: Vec<u64> = map
                    .split(|&b| b == b',')
                    .map(|n| num(n, "sparse map"))
                    .collect::<io::Result<_>>()?;
                if !nums.len().is_multiple_of(2) {
                    return Err(bad("sparse map has an odd number of values"));
                }
                nums.chunks(2).map(|c| (c[0], c[1])).collect()
            }
            (Some(major), minor, None) => {
                return Err(bad(format!(
                    "GNU sparse format {major}.{} is not supported",
                    minor.unwrap_or(0)
                )))
            }
            (None, _, None) => return Ok(()),
        };
        let data: u64 = regions.iter().map(|(_, l)| l).sum();
        if data != self.left {
            return Err(bad("sparse map does not match the entry's data size"));
        }
        e.size = s
            .real_size
            .ok_or_else(|| bad("sparse file without its size"))?;
        e.sparse = Some(regions);
        Ok(())
    }

    /// Reads the decimal map at the start of a sparse 1.0 entry's data.
    fn read_sparse_map(&mut self) -> io::Result<Vec<(u64, u64)>> {
        let mut text: Vec<u8> = Vec::new();
        let mut numbers: Vec<u64> = Vec::new();
        let mut want: Option<usize> = None;
        loop {
            if self.left < BLOCK as u64 {
                return Err(bad("sparse map runs past the entry"));
            }
            let b = self
                .read_block()?
                .ok_or_else(|| bad("archive ends in a sparse map"))?;
            self.left -= BLOCK as u64;
            text.extend_from_slice(&b);
            while let Some(nl) = text.iter().position(|&c| c == b'\n') {
                let line: Vec<u8> = text.drain(..=nl).collect();
                numbers.push(num(&line[..line.len() - 1], "sparse map")?);
                if want.is_none() {
                    let n = numbers.pop().unwrap_or(0) as usize;
                    if n > 1 << 24 {
                        return Err(bad("sparse map too large"));
                    }
                    want = Some(2 * n);
                }
                if want == Some(numbers.len()) {
                    return Ok(numbers.chunks(2).map(|c| (c[0], c[1])).collect());
                }
            }
        }
    }

    /// Reads data of the current entry; 0 at its end. For a sparse file this is the regions'
    /// data, one after the other.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("archive ends in the middle of a file"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[derive(Default)]
struct SparseKeys {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    map: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::super::tar::{encode_header, pad, Entry as Out, SparseMap, END};
    use super::*;

    fn read_all<R: Read>(r: &mut TarReader<R>) -> Vec<(Entry, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut data = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let n = r.read_data(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            out.push((e, data));
        }
        out
    }

    #[test]
    fn our_entries_read_back() {
        let xattrs = vec![
            (b"user.k".to_vec(), b"v=1\n".to_vec()),
            (b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0, 0xff]),
        ];
        let long = [b"c/rootfs/".to_vec(), vec![b'n'; 300]].concat();
        let mut ar = Vec::new();
        encode_header(
            &Out {
                path: b"c/rootfs",
                kind: Some(Kind::Dir),
                mode: 0o755,
                mtime: 5,
                ..Default::default()
            },
            &mut ar,
        );
        let n = encode_header(
            &Out {
                path: &long,
                kind: Some(Kind::File),
                mode: 0o4755,
                uid: 3_000_000,
                gid: 7,
                size: 3,
                mtime: 1_700_000_000,
                xattrs: &xattrs,
                ..Default::default()
            },
            &mut ar,
        );
        ar.extend_from_slice(b"abc");
        pad(&mut ar);
        assert_eq!(n, 3);
        encode_header(
            &Out {
                path: b"c/rootfs/hl",
                kind: Some(Kind::HardLink),
                link: &long,
                ..Default::default()
            },
            &mut ar,
        );
        let map = SparseMap {
            regions: vec![(10, 2), (5000, 3)],
            real_size: 9000,
        };
        encode_header(
            &Out {
                path: b"c/rootfs/sp",
                kind: Some(Kind::File),
                size: 9000,
                sparse: Some(&map),
                ..Default::default()
            },
            &mut ar,
        );
        ar.extend_from_slice(&map.encode());
        ar.extend_from_slice(b"xyzzy");
        pad(&mut ar);
        ar.extend_from_slice(&END);

        let got = read_all(&mut TarReader::new(&ar[..]));
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].0.path, b"c/rootfs");
        assert_eq!(got[0].0.kind, Some(Kind::Dir));
        let f = &got[1].0;
        assert_eq!(f.path, long);
        assert_eq!(
            (f.mode, f.uid, f.gid, f.mtime),
            (0o4755, 3_000_000, 7, 1_700_000_000)
        );
        assert_eq!(f.xattrs, xattrs);
        assert_eq!(got[1].1, b"abc");
        assert_eq!(got[2].0.kind, Some(Kind::HardLink));
        assert_eq!(got[2].0.link, long);
        let s = &got[3].0;
        assert_eq!(s.path, b"c/rootfs/sp");
        assert_eq!(s.size, 9000);
        assert_eq!(
            s.sparse.as_deref(),
            Some(&[(10, 2), (5000, 3), (9000, 0)][..])
        );
        assert_eq!(got[3].1, b"xyzzy");
    }

    #[test]
    fn gnu_long_names_and_prefixless_gnu_magic() {
        // A GNU-format header: magic "ustar  \0", long name in an 'L' entry.
        fn gnu_header(name: &[u8], flag: u8, size: u64) -> [u8; BLOCK] {
            let mut h = [0u8; BLOCK];
            h[..name.len()].copy_from_slice(name);
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = flag;
            h[257..265].copy_from_slice(b"ustar  \0");
            h[345] = b'X'; // GNU keeps atime here: never a prefix.
            h[148..156].fill(b' ');
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            h
        }
        let name = [b"./c/rootfs/".to_vec(), vec![b'z'; 150]].concat();
        let mut ar = Vec::new();
        let mut body = name.clone();
        body.push(0);
        ar.extend_from_slice(&gnu_header(b"././@LongLink", b'L', body.len() as u64));
        ar.extend_from_slice(&body);
        pad(&mut ar);
        ar.extend_from_slice(&gnu_header(&name[..100], b'0', 2));
        ar.extend_from_slice(b"hi");
        pad(&mut ar);
        ar.extend_from_slice(&gnu_header(b"./c/config", b'0', 0));
        // No end-of-archive blocks: tolerated.
        let got = read_all(&mut TarReader::new(&ar[..]));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.path, name);
        assert_eq!(got[0].1, b"hi");
        assert_eq!(got[1].0.path, b"./c/config");
    }

    #[test]
    fn garbage_is_refused() {
        let junk = vec![7u8; 1024];
        let err = TarReader::new(&junk[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncated_archives_are_errors() {
        let mut ar = Vec::new();
        encode_header(
            &Out {
                path: b"f",
                kind: Some(Kind::File),
                size: 1000,
                ..Default::default()
            },
            &mut ar,
        );
        ar.extend_from_slice(&[1u8; 100]);
        let mut r = TarReader::new(&ar[..]);
        r.next_entry().unwrap().unwrap();
        let mut buf = vec![0u8; 2000];
        let mut total = 0;
        let err = loop {
            match r.read_data(&mut buf) {
                Ok(0) => panic!("a short file read as complete"),
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(total, 100);
        assert!(err.to_string().contains("middle of a file"));
    }

    #[test]
    fn pax_sparse_0_1_map() {
        let recs = b"22 GNU.sparse.map=0,2\n";
        assert_eq!(recs.len(), 22, "the length counts the whole record");
        let parsed = parse_pax(recs).unwrap();
        assert_eq!(parsed, vec![(b"GNU.sparse.map".to_vec(), b"0,2".to_vec())]);
        assert!(parse_pax(b"30 GNU.sparse.map=0,2\n").is_err());
    }
}
