//! Small wrappers over the system calls the shell needs.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::wire::MacAddr;

/// Turn a libc return value into a Result.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Fill `buf` from the kernel's random number generator: lassi's one source
/// of randomness (portal challenges, DNS ids and ports, session-id seeds).
/// Panics only when neither getrandom(2) nor /dev/urandom works, where no
/// secret lassi makes could be trusted anyway.
pub fn random_bytes(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into our buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // No getrandom (kernel before 3.17): fall back to the device.
            use std::io::Read;
            let read = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut buf[filled..]));
            if read.is_ok() {
                return;
            }
            panic!("no source of random numbers (getrandom and /dev/urandom both failed)");
        }
    }
}

/// The index of a network interface, with the name in the error.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name).map_err(|_| io::Error::other("interface name has a NUL byte"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name}: {e}")));
    }
    Ok(i as i32)
}

/// Block up to `ms` milliseconds until `fd` is writable.
pub fn wait_writable(fd: RawFd, ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

fn read_sys(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string())
}

/// The hardware address of an interface.
pub fn interface_mac(name: &str) -> io::Result<MacAddr> {
    let text = read_sys(&format!("/sys/class/net/{name}/address"))
        .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
    text.parse()
        .map_err(|e| io::Error::other(format!("interface {name}: {e}")))
}

/// Bring an interface up (like `ip link set NAME up`).
pub fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2) for the ioctl.
    let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: s is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: zeroed ifreq is valid; the name fits (checked by config: ≤ 15).
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (d, b) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *b as libc::c_char;
    }
    // SAFETY: req is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS.
    unsafe {
        cvt(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req,
        ))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req))?;
    }
    Ok(())
}

/// Write a sysctl under /proc/sys (`key` with dots, like `net.ipv4.ip_forward`).
/// Interface names containing dots (VLANs: eth0.10) are handled by the caller
/// passing the path form with slashes.
pub fn write_sysctl(path_under_proc_sys: &str, value: &str) -> io::Result<()> {
    let p = Path::new("/proc/sys").join(path_under_proc_sys);
    std::fs::write(&p, value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {}: {e}", p.display())))
}

/// An eventfd used to wake the data-plane thread's poll.
pub struct Waker(OwnedFd);

impl Waker {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain eventfd(2).
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fd is fresh and ours.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wake the poller.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Reset after waking.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
