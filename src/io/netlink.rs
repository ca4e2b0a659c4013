//! A small netlink client for the kernel fast path: it builds batches of
//! messages (nftables set elements over `NETLINK_NETFILTER`, neighbours and
//! host routes over `NETLINK_ROUTE`), sends each batch in one system call,
//! and reads the kernel's acknowledgements and dumps.
//!
//! Written here rather than taken from a crate: `nftnl` binds the C
//! libnftnl (absent from a musl cross build, and a shared library every
//! router would need), `rustables` pulls in a generated binding of all of
//! nftables and a dozen dependencies, and the MIPS binary has about 16 KB
//! left of its 2 MiB; lassi needs six message types and one dump parser.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NLMSG_ERROR`: an acknowledgement (error 0) or an error.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// Attribute flag of a nested attribute.
const NLA_F_NESTED: u16 = 0x8000;
/// `NETLINK_CAP_ACK`: acknowledgements without a copy of the request.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// Request flags.
pub const NLM_F_REQUEST: u16 = 1;
/// Ask for an acknowledgement.
pub const NLM_F_ACK: u16 = 4;
/// Replace an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// Create if absent.
pub const NLM_F_CREATE: u16 = 0x400;
/// A dump of every object.
pub const NLM_F_DUMP: u16 = 0x300;
/// Size of a netlink message header.
const HDR_LEN: usize = 16;
/// Most a reply read may hold (the kernel fills dump messages up to 32 KiB).
const RECV_BUF: usize = 64 << 10;

/// Round up to netlink's 4-byte alignment.
fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Messages being built, to be sent in one system call.
#[derive(Default)]
pub struct Batch {
    buf: Vec<u8>,
    /// Where the message being built starts.
    current: Option<usize>,
    /// Sequence numbers of the messages that asked for an acknowledgement.
    acked: Vec<u32>,
}

impl Batch {
    /// Start a message of type `ty` with `flags`, sequence `seq` and the
    /// family header `header` (finishing the previous one).
    pub fn message(&mut self, ty: u16, flags: u16, seq: u32, header: &[u8]) {
        self.finish();
        self.current = Some(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.push_padded(header);
        if flags & NLM_F_ACK != 0 {
            self.acked.push(seq);
        }
    }

    /// Add attribute `ty` holding `data`.
    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("netlink attribute over 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.push_padded(data);
    }

    /// Add a string attribute (NUL-terminated, as the kernel wants it).
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    /// Open a nested attribute `ty`; close it with [`Batch::end_nest`].
    pub fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Close the nested attribute opened at `at`.
    pub fn end_nest(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).expect("nested attribute over 64 KiB");
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// The bytes of the current message so far (to size batches).
    pub fn current_len(&self) -> usize {
        self.current.map_or(0, |c| self.buf.len() - c)
    }

    /// Every message, finished.
    pub fn bytes(&mut self) -> &[u8] {
        self.finish();
        &self.buf
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn push_padded(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn finish(&mut self) {
        if let Some(start) = self.current.take() {
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// One message of a reply: its type and its payload after the header.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Message type.
    pub ty: u16,
    /// Sequence number.
    pub seq: u32,
    /// Payload (family header and attributes).
    pub payload: &'a [u8],
}

/// The messages in a buffer read from a netlink socket; a truncated one
/// ends the walk.
pub fn replies(mut buf: &[u8]) -> impl Iterator<Item = Reply<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < HDR_LEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < HDR_LEN || len > buf.len() {
            return None;
        }
        let reply = Reply {
            ty: u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            payload: &buf[HDR_LEN..len],
        };
        buf = &buf[align(len).min(buf.len())..];
        Some(reply)
    })
}

/// The attributes in `buf`: (type without flag bits, payload).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let data = &buf[4..len];
        buf = &buf[align(len).min(buf.len())..];
        Some((ty, data))
    })
}

/// The first attribute of type `ty` in `buf`.
pub fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, d)| d)
}

/// The error code an `NLMSG_ERROR` payload carries (0: acknowledged).
fn error_of(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map_or(-libc::EPROTO, |b| i32::from_ne_bytes(b.try_into().unwrap()))
}

/// A netlink socket.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// Open a netlink socket of `protocol`, with a 2 s receive timeout so a
    /// missing answer is an error, not a hang.
    pub fn open(protocol: libc::c_int) -> io::Result<Socket> {
        // SAFETY: plain socket(2) call.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &(1i32 << 20))?;
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(1i32 << 20))?;
        // Older kernels lack it; acknowledgements are then only longer.
        let _ = set_opt(&fd, libc::SOL_NETLINK, NETLINK_CAP_ACK, &1i32);
        // SAFETY: zeroed sockaddr_nl is valid (pid 0: the kernel picks).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa is a valid sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket {
            fd,
            seq: 1,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A fresh sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: bytes is a valid buffer; the socket is connected to the kernel.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read one buffer of replies; a timeout is an error.
    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: self.buf is a valid buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the kernel did not answer within 2 s",
                    ))
                }
                _ => return Err(e),
            }
        }
    }

    /// Send `batch` and wait until the kernel acknowledged every message
    /// that asked for it; the first error it reported is returned (all
    /// answers are read either way, so none is left for the next request).
    pub fn execute(&mut self, batch: &mut Batch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut waiting = batch.acked.clone();
        self.send(batch.bytes())?;
        let mut first_error = None;
        while !waiting.is_empty() {
            let n = self.recv()?;
            for r in replies(&self.buf[..n]) {
                if r.ty != NLMSG_ERROR {
                    continue;
                }
                if let Some(i) = waiting.iter().position(|s| *s == r.seq) {
                    waiting.swap_remove(i);
                    let code = error_of(r.payload);
                    if code != 0 && first_error.is_none() {
                        first_error = Some(io::Error::from_raw_os_error(-code));
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Send the dump request in `batch` (one message, sequence `seq`) and
    /// hand each message of the answer to `each`, until the kernel says done.
    pub fn dump(
        &mut self,
        batch: &mut Batch,
        seq: u32,
        mut each: impl FnMut(&Reply),
    ) -> io::Result<()> {
        self.dump_dyn(batch, seq, &mut each)
    }

    /// [`Socket::dump`]'s one copy (not one per caller's closure: the
    /// router binary is counted in kilobytes).
    fn dump_dyn(
        &mut self,
        batch: &mut Batch,
        seq: u32,
        each: &mut dyn FnMut(&Reply),
    ) -> io::Result<()> {
        self.send(batch.bytes())?;
        loop {
            let n = self.recv()?;
            let mut done = false;
            let mut error = None;
            for r in replies(&self.buf[..n]) {
                if r.seq != seq {
                    continue;
                }
                match r.ty {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = error_of(r.payload);
                        if code != 0 {
                            error = Some(io::Error::from_raw_os_error(-code));
                        }
                        done = true;
                    }
                    _ => each(&r),
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
            if done {
                return Ok(());
            }
        }
    }
}

fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v points at a T of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_nests_and_padding_are_laid_out_as_the_kernel_reads_them() {
        let mut b = Batch::default();
        b.message(0x0a0c, NLM_F_REQUEST | NLM_F_ACK, 7, &[1, 0, 0, 0]);
        let n = b.nest(3);
        b.attr(1, &[0xaa; 5]);
        b.end_nest(n);
        b.attr_str(2, "up4");
        b.message(0x11, NLM_F_REQUEST, 8, &[0, 0, 0, 10]);
        let bytes = b.bytes().to_vec();
        let msgs: Vec<_> = replies(&bytes).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].ty, msgs[0].seq), (0x0a0c, 7));
        assert_eq!((msgs[1].ty, msgs[1].seq), (0x11, 8));
        // header 16 + family 4 + nest (4 + attr 4+5 padded to 12) + str 4+4
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()),
            16 + 4 + 16 + 8
        );
        let body = &msgs[0].payload[4..];
        let top: Vec<_> = attrs(body).collect();
        assert_eq!(top.len(), 2);
        // The nest is flagged as one, and its length covers the padded inner attribute.
        assert_eq!(u16::from_ne_bytes([body[2], body[3]]), 3 | NLA_F_NESTED);
        assert_eq!(top[0], (3, &body[4..16]));
        assert_eq!(attr(top[0].1, 1), Some(&[0xaa; 5][..]));
        assert_eq!(top[1], (2, &b"up4\0"[..]));
        assert_eq!(b.acked, vec![7]);
    }

    #[test]
    fn truncated_or_lying_lengths_end_the_walk_without_panicking() {
        let mut b = Batch::default();
        b.message(16, 0, 1, &[]);
        b.attr(1, &[1, 2, 3, 4]);
        let bytes = b.bytes().to_vec();
        for cut in 0..bytes.len() {
            let _ = replies(&bytes[..cut]).count();
        }
        // An attribute claiming more than there is, or less than its header.
        assert_eq!(attrs(&[200, 0, 1, 0, 9, 9]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        // A message claiming less than a header.
        let mut bad = bytes.clone();
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(replies(&bad).count(), 0);
    }

    #[test]
    fn an_error_reply_carries_the_negative_errno() {
        assert_eq!(error_of(&(-libc::ENOENT).to_ne_bytes()), -libc::ENOENT);
        assert_eq!(error_of(&0i32.to_ne_bytes()), 0);
        assert_eq!(error_of(&[1]), -libc::EPROTO);
    }
}
