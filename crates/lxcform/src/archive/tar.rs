//! Encoding tar entries: POSIX.1-2001 (pax) headers, as `tar --format=posix` writes them.
//!
//! Each entry is a ustar header, preceded by a pax extended header (`x`) only when the ustar
//! fields cannot say everything: a path or link target too long, a number too large, extended
//! attributes (`SCHILY.xattr.NAME`, GNU tar's and star's keyword, which carries POSIX ACLs as
//! `system.posix_acl_access`/`_default` and file capabilities as `security.capability`), or a
//! sparse file (GNU's pax sparse format 1.0). Owners are numeric only (empty user and group
//! names). Times are whole seconds.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// The kind of an entry, as its ustar type flag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (`0`).
    File,
    /// A hard link to an earlier entry (`1`).
    HardLink,
    /// A symbolic link (`2`).
    Symlink,
    /// A character device (`3`).
    CharDev,
    /// A block device (`4`).
    BlockDev,
    /// A directory (`5`).
    Dir,
    /// A FIFO (`6`).
    Fifo,
}

impl Kind {
    /// The ustar type flag.
    pub fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDev => b'3',
            Kind::BlockDev => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }

    /// The kind of a type flag; old-style `\0` and contiguous `7` are regular files.
    pub fn from_flag(flag: u8) -> Option<Kind> {
        Some(match flag {
            b'0' | 0 | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::CharDev,
            b'4' => Kind::BlockDev,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            _ => return None,
        })
    }
}

/// The data regions of a sparse file: `(offset, length)` pairs in increasing order, and the
/// file's full size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    /// Data regions; everything else reads as zeros.
    pub regions: Vec<(u64, u64)>,
    /// The file's size, holes included.
    pub real_size: u64,
}

impl SparseMap {
    /// Bytes of data stored for the file.
    pub fn data_len(&self) -> u64 {
        self.regions.iter().map(|(_, len)| len).sum()
    }

    /// The map as GNU pax sparse 1.0 stores it at the start of the entry's data: the number
    /// of regions, then offset and length of each, one decimal number a line, padded with NULs
    /// to a whole block. A trailing hole is recorded as a last, empty region at the end.
    pub fn encode(&self) -> Vec<u8> {
        let mut regions = self.regions.clone();
        let end = regions.last().map_or(0, |(o, l)| o + l);
        if end < self.real_size || regions.is_empty() {
            regions.push((self.real_size, 0));
        }
        let mut out = format!("{}\n", regions.len()).into_bytes();
        for (offset, len) in &regions {
            out.extend_from_slice(format!("{offset}\n{len}\n").as_bytes());
        }
        pad(&mut out);
        out
    }
}

/// What is known of one entry.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// Path inside the archive, without a trailing slash.
    pub path: &'a [u8],
    /// The kind (`None` is a programming error and encodes as a regular file).
    pub kind: Option<Kind>,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Data size of a regular file (its full size; for a sparse file the map says more).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Symlink target, or the archive path a hard link points to.
    pub link: &'a [u8],
    /// Device major and minor numbers.
    pub dev: (u32, u32),
    /// Extended attributes, name and value.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
    /// The data regions of a sparse regular file.
    pub sparse: Option<&'a SparseMap>,
}

/// Pads `out` with NULs to a whole number of blocks.
pub fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// Bytes of padding after `len` bytes of data.
pub fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Appends one pax record (`"LEN KEY=VALUE\n"`, LEN counting the whole record).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes `value` as zero-padded octal with a NUL terminator into `field`, or as base-256
/// (GNU's extension, high bit set) when it does not fit; returns false in that case, so the
/// caller adds a pax record too for strictly POSIX readers.
fn numeric(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    if digits < 22 && value < 1u64 << (3 * digits) {
        let s = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
        return true;
    }
    field.fill(0);
    field[0] = 0x80;
    let bytes = value.to_be_bytes();
    let n = bytes.len().min(field.len() - 1);
    let len = field.len();
    field[len - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    false
}

fn checksum(header: &mut [u8; BLOCK]) {
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
}

/// Splits a path into ustar's prefix (155 bytes) and name (100 bytes) at a slash, if it fits.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    if path.len() > 256 {
        return None;
    }
    // The name part must be non-empty and at most 100 bytes; the prefix at most 155.
    let start = path.len().saturating_sub(101);
    path[start..]
        .iter()
        .position(|&b| b == b'/')
        .map(|i| start + i)
        .filter(|&i| i <= 155 && i + 1 < path.len())
        .map(|i| (&path[..i], &path[i + 1..]))
}

/// The fields of one ustar header.
struct Ustar<'a> {
    path: &'a [u8],
    flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    link: &'a [u8],
    dev: (u32, u32),
}

fn ustar_header(u: &Ustar<'_>) -> ([u8; BLOCK], Vec<(&'static str, String)>) {
    let Ustar {
        path,
        flag,
        mode,
        uid,
        gid,
        size,
        mtime,
        link,
        dev,
    } = *u;
    let mut h = [0u8; BLOCK];
    let mut overflow = Vec::new();
    match split_ustar(path) {
        Some((prefix, name)) => {
            h[..name.len()].copy_from_slice(name);
            h[345..345 + prefix.len()].copy_from_slice(prefix);
        }
        None => {
            // The pax `path` record says it all; keep the start for old readers.
            h[..100].copy_from_slice(&path[..100]);
        }
    }
    numeric(&mut h[100..108], u64::from(mode & 0o7777));
    if !numeric(&mut h[108..116], uid) {
        overflow.push(("uid", uid.to_string()));
    }
    if !numeric(&mut h[116..124], gid) {
        overflow.push(("gid", gid.to_string()));
    }
    if !numeric(&mut h[124..136], size) {
        overflow.push(("size", size.to_string()));
    }
    if mtime < 0 || !numeric(&mut h[136..148], mtime as u64) {
        if mtime < 0 {
            numeric(&mut h[136..148], 0);
        }
        overflow.push(("mtime", mtime.to_string()));
    }
    h[156] = flag;
    let n = link.len().min(100);
    h[157..157 + n].copy_from_slice(&link[..n]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    numeric(&mut h[329..337], u64::from(dev.0));
    numeric(&mut h[337..345], u64::from(dev.1));
    checksum(&mut h);
    (h, overflow)
}

/// The name GNU tar gives the ustar header of a sparse file (`DIR/GNUSparseFile.0/NAME`), so
/// that a reader that does not know the format extracts it aside instead of corrupting it.
fn sparse_alias(path: &[u8]) -> Vec<u8> {
    let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    [dir, b"GNUSparseFile.0/", base].concat()
}

/// Encodes the header block(s) of `e` into `out`: a pax header when needed, then the ustar
/// header. For a sparse file the caller then writes [`SparseMap::encode`] and the regions'
/// data; for any regular file the data is followed by [`padding`].
///
/// Returns the number of data bytes that must follow (0 for everything but regular files).
pub fn encode_header(e: &Entry<'_>, out: &mut Vec<u8>) -> u64 {
    let kind = e.kind.unwrap_or(Kind::File);
    let mut path = e.path.to_vec();
    if kind == Kind::Dir {
        path.push(b'/');
    }
    let mut pax: Vec<u8> = Vec::new();
    let (header_path, size) = match (kind, e.sparse) {
        (Kind::File, Some(map)) => {
            pax_record(&mut pax, b"GNU.sparse.major", b"1");
            pax_record(&mut pax, b"GNU.sparse.minor", b"0");
            pax_record(&mut pax, b"GNU.sparse.name", &path);
            pax_record(
                &mut pax,
                b"GNU.sparse.realsize",
                map.real_size.to_string().as_bytes(),
            );
            let size = map.encode().len() as u64 + map.data_len();
            (sparse_alias(&path), size)
        }
        (Kind::File, None) => (path.clone(), e.size),
        _ => (path.clone(), 0),
    };
    let link: &[u8] = match kind {
        Kind::Symlink | Kind::HardLink => e.link,
        _ => &[],
    };
    let dev = match kind {
        Kind::CharDev | Kind::BlockDev => e.dev,
        _ => (0, 0),
    };
    let (header, overflow) = ustar_header(&Ustar {
        path: &header_path,
        flag: kind.flag(),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size,
        mtime: e.mtime,
        link,
        dev,
    });
    if split_ustar(&header_path).is_none() && e.sparse.is_none() {
        pax_record(&mut pax, b"path", &path);
    }
    if link.len() > 100 {
        pax_record(&mut pax, b"linkpath", link);
    }
    for (key, value) in overflow {
        pax_record(&mut pax, key.as_bytes(), value.as_bytes());
    }
    for (name, value) in e.xattrs {
        let key = [&b"SCHILY.xattr."[..], name].concat();
        pax_record(&mut pax, &key, value);
    }
    if !pax.is_empty() {
        let (dir, base) = match path
            .strip_suffix(b"/")
            .unwrap_or(&path)
            .iter()
            .rposition(|&b| b == b'/')
        {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], &path[..]),
        };
        let mut name = [dir, b"PaxHeaders/", base].concat();
        name.truncate(100);
        let (xh, _) = ustar_header(&Ustar {
            path: &name,
            flag: b'x',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: pax.len() as u64,
            mtime: e.mtime.max(0),
            link: &[],
            dev: (0, 0),
        });
        out.extend_from_slice(&xh);
        out.extend_from_slice(&pax);
        pad(out);
    }
    out.extend_from_slice(&header);
    size
}

/// The end of an archive: two zero blocks.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", b"a");
        assert_eq!(out, b"9 path=a\n");
        out.clear();
        // 11 bytes without the length; with its two digits, 13.
        pax_record(&mut out, b"path", b"abcd");
        assert_eq!(out, b"13 path=abcd\n");
        out.clear();
        let v = vec![b'x'; 95];
        pax_record(&mut out, b"path", &v);
        let len: usize = std::str::from_utf8(&out[..out.iter().position(|&b| b == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, out.len());
    }

    #[test]
    fn octal_and_base256_numbers() {
        let mut f = [0u8; 8];
        assert!(numeric(&mut f, 0o755));
        assert_eq!(&f, b"0000755\0");
        assert!(!numeric(&mut f, 1 << 21));
        assert_eq!(f[0], 0x80);
        assert_eq!(&f[4..], &(1u32 << 21).to_be_bytes());
        let mut size = [0u8; 12];
        assert!(numeric(&mut size, (1 << 33) - 1));
        assert!(!numeric(&mut size, 1 << 33));
    }

    #[test]
    fn long_paths_split_or_go_to_pax() {
        let short = b"a/b";
        assert_eq!(split_ustar(short), Some((&b""[..], &short[..])));
        let long = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 50]].concat();
        let (prefix, name) = split_ustar(&long).unwrap();
        assert_eq!(prefix.len(), 120);
        assert_eq!(name.len(), 50);
        let too_long = vec![b'x'; 300];
        assert_eq!(split_ustar(&too_long), None);
        let mut out = Vec::new();
        encode_header(
            &Entry {
                path: &too_long,
                kind: Some(Kind::File),
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(
            out.len(),
            3 * BLOCK,
            "pax header, its records, ustar header"
        );
        assert_eq!(out[156], b'x');
        assert!(out.windows(5).any(|w| w == b"path="));
    }

    #[test]
    fn header_checksum_and_fields() {
        let mut out = Vec::new();
        let n = encode_header(
            &Entry {
                path: b"c1/rootfs/bin/su",
                kind: Some(Kind::File),
                mode: 0o4755,
                uid: 0,
                gid: 0,
                size: 1234,
                mtime: 1_700_000_000,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(n, 1234);
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..16], b"c1/rootfs/bin/su");
        assert_eq!(&out[100..108], b"0004755\0");
        assert_eq!(&out[257..265], b"ustar\x0000");
        let stored = u32::from_str_radix(std::str::from_utf8(&out[148..154]).unwrap(), 8).unwrap();
        let mut copy = out.clone();
        copy[148..156].fill(b' ');
        assert_eq!(stored, copy.iter().map(|&b| u32::from(b)).sum::<u32>());
    }

    #[test]
    fn directories_get_a_slash_and_devices_their_numbers() {
        let mut out = Vec::new();
        encode_header(
            &Entry {
                path: b"c1/rootfs/dev",
                kind: Some(Kind::Dir),
                mode: 0o755,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(&out[..14], b"c1/rootfs/dev/");
        out.clear();
        encode_header(
            &Entry {
                path: b"c1/rootfs/dev/null",
                kind: Some(Kind::CharDev),
                mode: 0o666,
                dev: (1, 3),
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(out[156], b'3');
        assert_eq!(&out[329..337], b"0000001\0");
        assert_eq!(&out[337..345], b"0000003\0");
    }

    #[test]
    fn xattrs_become_schily_records() {
        let xattrs = vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2])];
        let mut out = Vec::new();
        encode_header(
            &Entry {
                path: b"c1/rootfs/bin/ping",
                kind: Some(Kind::File),
                xattrs: &xattrs,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(&out[..25], b"c1/rootfs/bin/PaxHeaders/");
        let rec = b"SCHILY.xattr.security.capability=\x01\x00\x00\x02\n";
        assert!(out.windows(rec.len()).any(|w| w == rec));
    }

    #[test]
    fn sparse_map_and_alias_name() {
        let map = SparseMap {
            regions: vec![(0, 4096), (1 << 20, 10)],
            real_size: 1 << 30,
        };
        let enc = map.encode();
        assert_eq!(enc.len(), BLOCK);
        assert!(enc.starts_with(b"3\n0\n4096\n1048576\n10\n1073741824\n0\n"));
        let mut out = Vec::new();
        let n = encode_header(
            &Entry {
                path: b"c1/rootfs/var/sparse",
                kind: Some(Kind::File),
                size: 1 << 30,
                sparse: Some(&map),
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(n, BLOCK as u64 + 4106);
        let ustar = &out[out.len() - BLOCK..];
        assert!(ustar.starts_with(b"c1/rootfs/var/GNUSparseFile.0/sparse"));
        let rec = b"GNU.sparse.name=c1/rootfs/var/sparse\n";
        assert!(out.windows(rec.len()).any(|w| w == rec));
    }

    #[test]
    fn an_all_hole_file_has_one_empty_region() {
        let map = SparseMap {
            regions: vec![],
            real_size: 5000,
        };
        assert!(map.encode().starts_with(b"1\n5000\n0\n"));
    }
}
