//! The few `bpf(2)` calls the kernel fast path's tc programs need: a
//! hash map of per-session values keyed by IPv4 address, a program loaded from
//! instructions assembled here ([`assemble`]), and (for tests) a dry run of the
//! program on a packet.
//!
//! Written here rather than taken from a crate: `aya` and `libbpf-rs` load
//! compiled ELF objects (a clang build step and, for libbpf, a C library
//! every router would need) and cost far more than the MIPS binary's
//! headroom; lassi needs two programs of 30-odd instructions and five map commands.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_PROG_LOAD: u32 = 5;
#[cfg(test)]
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_MAP_TYPE_HASH: u32 = 1;
/// Allocate elements as they are added, not all at creation.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier.
pub const PROG_TYPE_SCHED_CLS: u32 = 3;

/// `union bpf_attr`, as bytes (8-aligned for its 64-bit fields). The kernel
/// wants every byte past the fields a command uses to be zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(mut self, at: usize, v: u32) -> Attr {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn ptr(mut self, at: usize, p: *const u8) -> Attr {
        self.0[at..at + 8].copy_from_slice(&(p as usize as u64).to_ne_bytes());
        self
    }

    fn get_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().unwrap())
    }
}

/// `bpf(cmd, attr)`: the descriptor or value it returns.
fn sys_bpf(cmd: u32, attr: &mut Attr) -> io::Result<i32> {
    // SAFETY: attr is a valid, fully initialised bpf_attr of the size
    // given; the pointers in it point at live buffers of the caller.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as i32)
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Size of a [`SessionMap`] value.
pub const VALUE_SIZE: usize = 32;
/// One session's value in a [`SessionMap`] (its layout is its programs').
pub type Value = [u8; VALUE_SIZE];

/// A hash map from an IPv4 address (its octets) to a [`Value`].
pub struct SessionMap {
    fd: OwnedFd,
}

impl SessionMap {
    /// A map for up to `max_entries` addresses, allocated as they come.
    pub fn create(max_entries: u32) -> io::Result<SessionMap> {
        let mut attr = Attr::new()
            .u32(0, BPF_MAP_TYPE_HASH)
            .u32(4, 4)
            .u32(8, VALUE_SIZE as u32)
            .u32(12, max_entries)
            .u32(16, BPF_F_NO_PREALLOC);
        Ok(SessionMap {
            fd: owned(sys_bpf(BPF_MAP_CREATE, &mut attr)?),
        })
    }

    /// The map's descriptor (a program refers to the map by it).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The attributes of an element command; `key` and `value` must
    /// outlive the call made with them.
    fn elem_attr(&self, key: &[u8; 4], value: *mut Value) -> Attr {
        Attr::new()
            .u32(0, self.fd() as u32)
            .ptr(8, key.as_ptr())
            .ptr(16, value.cast())
    }

    /// Set `ip`'s value (replacing what it had).
    pub fn put(&self, ip: Ipv4Addr, value: &Value) -> io::Result<()> {
        let (key, mut value) = (ip.octets(), *value);
        let mut attr = self.elem_attr(&key, &mut value);
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// `ip`'s value, if it is in the map.
    pub fn get(&self, ip: Ipv4Addr) -> io::Result<Option<Value>> {
        let (key, mut value): ([u8; 4], Value) = (ip.octets(), [0; VALUE_SIZE]);
        let mut attr = self.elem_attr(&key, &mut value);
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Take `ip` out (absent already is not an error).
    pub fn remove(&self, ip: Ipv4Addr) -> io::Result<()> {
        let key = ip.octets();
        let mut attr = self.elem_attr(&key, std::ptr::null_mut());
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    /// Every address and its value, read in batches of `BATCH` elements
    /// (one system call each).
    pub fn all(&self) -> io::Result<Vec<(Ipv4Addr, Value)>> {
        const BATCH: usize = 512;
        let mut keys = vec![[0u8; 4]; BATCH];
        let mut values = vec![[0u8; VALUE_SIZE]; BATCH];
        let mut out = Vec::new();
        let mut token = 0u32;
        let mut first = true;
        loop {
            let in_batch: *const u8 = if first {
                std::ptr::null()
            } else {
                (&token as *const u32).cast()
            };
            let mut attr = Attr::new()
                .ptr(0, in_batch)
                .ptr(8, (&mut token as *mut u32).cast())
                .ptr(16, keys.as_mut_ptr().cast())
                .ptr(24, values.as_mut_ptr().cast())
                .u32(32, BATCH as u32)
                .u32(36, self.fd() as u32);
            let r = sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
            let n = (attr.get_u32(32) as usize).min(BATCH);
            if let Err(e) = &r {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(r.unwrap_err());
                }
            }
            out.extend((keys[..n].iter().zip(&values[..n])).map(|(k, v)| (Ipv4Addr::from(*k), *v)));
            if r.is_err() {
                return Ok(out);
            }
            first = false;
        }
    }
}

/// A loaded program.
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Load `insns` as a program of `prog_type`. (The verifier's log is
    /// not kept: the programs are fixed, so a refusal means the kernel
    /// lacks what they use, which the error says.)
    pub fn load(prog_type: u32, insns: &[u64]) -> io::Result<Program> {
        let license = b"GPL\0";
        let mut attr = Attr::new()
            .u32(0, prog_type)
            .u32(4, insns.len() as u32)
            .ptr(8, insns.as_ptr().cast())
            .ptr(16, license.as_ptr());
        match sys_bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(Program { fd: owned(fd) }),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{e} (a kernel with eBPF for tc, Linux 5.15 or later?)"),
            )),
        }
    }

    /// The program's descriptor.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Run the program once on `packet` with the context `ctx` (a
    /// `struct __sk_buff`); its return value and the context after.
    #[cfg(test)]
    pub fn test_run(&self, packet: &[u8], ctx: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; ctx.len()];
        let mut attr = Attr::new()
            .u32(0, self.fd() as u32)
            .u32(8, packet.len() as u32)
            .ptr(16, packet.as_ptr())
            .u32(32, 1)
            .u32(40, ctx.len() as u32)
            .u32(44, out.len() as u32)
            .ptr(48, ctx.as_ptr())
            .ptr(56, out.as_mut_ptr());
        sys_bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        Ok((attr.get_u32(4), out))
    }
}

/// Registers.
pub const R0: u8 = 0;
/// First argument, and the context on entry.
pub const R1: u8 = 1;
/// Second argument.
pub const R2: u8 = 2;
/// Scratch.
pub const R3: u8 = 3;
/// Scratch.
pub const R4: u8 = 4;
/// Scratch.
pub const R5: u8 = 5;
/// Preserved across calls.
pub const R6: u8 = 6;
/// The frame pointer (read-only).
pub const R10: u8 = 10;

/// Opcodes used.
pub mod op {
    /// `dst = *(u32 *)(src + off)`
    pub const LDX_W: u8 = 0x61;
    /// `dst = *(u16 *)(src + off)`
    pub const LDX_H: u8 = 0x69;
    /// `*(u32 *)(dst + off) = src`
    pub const STX_W: u8 = 0x63;
    /// `lock *(u64 *)(dst + off) += src`
    pub const ATOMIC_ADD_DW: u8 = 0xdb;
    /// `dst = imm64` (two instructions)
    pub const LD_DW_IMM: u8 = 0x18;
    /// `dst = src`
    pub const MOV_X: u8 = 0xbf;
    /// `dst = imm`
    pub const MOV_K: u8 = 0xb7;
    /// `dst += imm`
    pub const ADD_K: u8 = 0x07;
    /// `dst -= src`
    pub const SUB_X: u8 = 0x1f;
    /// `dst *= imm`
    pub const MUL_K: u8 = 0x27;
    /// `dst |= imm`
    pub const OR_K: u8 = 0x47;
    /// `dst = (u32)dst & imm` (32-bit: no sign extension of imm)
    pub const AND32_K: u8 = 0x54;
    /// `dst = (u32)imm`
    pub const MOV32_K: u8 = 0xb4;
    /// `if dst == imm goto`
    pub const JEQ_K: u8 = 0x15;
    /// `if dst != imm goto`
    pub const JNE_K: u8 = 0x55;
    /// `if dst > src goto`
    pub const JGT_X: u8 = 0x2d;
    /// `if dst != src goto`
    pub const JNE_X: u8 = 0x5d;
    /// `if dst == src goto`
    pub const JEQ_X: u8 = 0x1d;
    /// Call helper `imm`.
    pub const CALL: u8 = 0x85;
    /// Return r0.
    pub const EXIT: u8 = 0x95;
}

/// `src_reg` of a `LD_DW_IMM` whose immediate is a map's descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// An immediate: a constant, or the `n`th parameter of [`assemble`].
#[derive(Clone, Copy, Debug)]
pub enum Imm {
    /// This value.
    K(i32),
    /// `params[n]`.
    Param(usize),
}

/// A jump target (at most 8 per program), by number.
#[derive(Clone, Copy, Debug)]
pub struct Label(pub u8);

/// One step of a program written as data (a table costs the router binary
/// far less than builder calls).
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// An instruction: opcode, dst, src, offset, immediate.
    I(u8, u8, u8, i16, Imm),
    /// A conditional jump to a label: opcode, dst, src, immediate.
    Jump(u8, u8, u8, Imm, Label),
    /// A label for the next instruction.
    At(Label),
    /// `dst = the map` (two instructions; the kernel swaps in the map).
    LoadMap(u8),
}

fn encode(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = if cfg!(target_endian = "little") {
        (src << 4) | dst
    } else {
        (dst << 4) | src
    };
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// The instructions of `parts` (one program, written in several tables),
/// immediates filled in from `params`, jumps resolved, maps as the map
/// descriptor `map_fd`.
pub fn assemble(parts: &[&[Step]], params: &[i32], map_fd: i32) -> Vec<u64> {
    let steps = || parts.iter().flat_map(|p| p.iter());
    // Where each label is, in instructions.
    let mut labels = [0i64; 8];
    let mut at = 0i64;
    for s in steps() {
        match s {
            Step::At(l) => labels[l.0 as usize] = at,
            Step::LoadMap(_) => at += 2,
            _ => at += 1,
        }
    }
    let imm = |i: &Imm| match *i {
        Imm::K(k) => k,
        Imm::Param(n) => params[n],
    };
    let mut code = Vec::with_capacity(at as usize);
    for s in steps() {
        match s {
            Step::I(op, dst, src, off, i) => code.push(encode(*op, *dst, *src, *off, imm(i))),
            Step::Jump(op, dst, src, i, label) => {
                let to = labels[label.0 as usize];
                let off = (to - code.len() as i64 - 1) as i16;
                code.push(encode(*op, *dst, *src, off, imm(i)));
            }
            Step::LoadMap(dst) => {
                code.push(encode(op::LD_DW_IMM, *dst, PSEUDO_MAP_FD, 0, map_fd));
                code.push(0);
            }
            Step::At(_) => {}
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_jump_lands_on_its_label_across_tables() {
        use Imm::K;
        const OUT: Label = Label(3);
        let first = [Step::Jump(op::JEQ_K, R0, 0, K(0), OUT), Step::LoadMap(R1)];
        let second = [
            Step::I(op::MOV_K, R0, 0, 0, Imm::Param(0)),
            Step::At(OUT),
            Step::I(op::EXIT, 0, 0, 0, K(0)),
        ];
        let code = assemble(&[&first, &second], &[7], 3);
        assert_eq!(code.len(), 5);
        assert_eq!(code[1], encode(op::LD_DW_IMM, R1, PSEUDO_MAP_FD, 0, 3));
        let off = i16::from_ne_bytes(code[0].to_ne_bytes()[2..4].try_into().unwrap());
        assert_eq!(off, 3, "skips the map load and the move");
        assert_eq!(code[3], encode(op::MOV_K, R0, 0, 0, 7));
        assert_eq!(code[4].to_ne_bytes()[0], op::EXIT);
    }

    #[test]
    fn registers_pack_in_the_order_of_the_byte_order() {
        let b = encode(op::MOV_X, R6, R1, 0, 0).to_ne_bytes();
        let want = if cfg!(target_endian = "little") {
            0x16
        } else {
            0x61
        };
        assert_eq!(b[1], want);
    }
}
