//! The LAN sockets' classic-BPF programs: which forwarding thread reads a
//! frame (the program of the `PACKET_FANOUT_CBPF` group all LAN sockets
//! join), and the filter that keeps lassi's own sends out of them.
//!
//! The kernel runs it on every frame and gives the frame to the member at
//! the index it returns (modulo the group's size; members are numbered in
//! the order they joined, and the engine thread joins first, so index 0 is
//! the engine thread).
//!
//! - Everything only the engine handles goes to index 0 directly: frames
//!   that are not IPv4 (ARP, IPv6) and frames not addressed to lassi's MAC
//!   alone (broadcasts: DHCP discoveries and requests). Spread by a flow
//!   hash, as with `PACKET_FANOUT_HASH`, a broadcast flood shares one hash
//!   and so lands on one worker, which copies every frame into the bounded
//!   hand-off queue to the engine and, once that is full, drops honest
//!   clients' discoveries with the flood's; read by the engine thread
//!   itself, the flood only competes in the socket's receive buffer, as
//!   with one thread.
//! - IPv4 unicast is spread by a hash of its addresses and, for TCP and
//!   UDP without options or fragmentation, its ports: one flow stays on one
//!   thread (no reordering), all fragments of a packet on one thread.
//!
//! The hash is computed here rather than read from the kernel's (`rxhash`)
//! because that one is zero until something computed it, which for frames
//! from most virtual and many real devices nothing has.

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

/// Offset of ancillary data (`SKF_AD_OFF`).
const SKF_AD_OFF: u32 = 0xffff_f000;
/// `skb->protocol`, in host order.
const SKF_AD_PROTOCOL: u32 = SKF_AD_OFF;
/// `skb->pkt_type`.
const SKF_AD_PKTTYPE: u32 = SKF_AD_OFF + 4;
/// `skb->mark`.
const SKF_AD_MARK: u32 = SKF_AD_OFF + 20;
/// 1 when the frame carried a VLAN tag (the kernel stripped it).
const SKF_AD_VLAN_TAG_PRESENT: u32 = SKF_AD_OFF + 48;
/// Loads relative to the network header (`SKF_NET_OFF`): the same for a
/// frame however much link-layer header is in front.
const NET: u32 = 0xfff0_0000;

const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_IMM: u16 = 0x00;
const LD_MEM: u16 = 0x60;
const ST: u16 = 0x02;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const JA: u16 = 0x05;
const XOR_X: u16 = 0xac;
const RSH_K: u16 = 0x74;
const MUL_K: u16 = 0x24;
const TAX: u16 = 0x07;
const RET_A: u16 = 0x16;
const RET_K: u16 = 0x06;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// A socket filter that refuses outgoing frames (packet type
/// `PACKET_OUTGOING`): in a fanout group `PACKET_IGNORE_OUTGOING` does not
/// apply, and every member would read back what lassi sends.
pub fn drop_outgoing() -> Vec<Insn> {
    vec![
        insn(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        insn(JEQ_K, 0, 1, u32::from(libc::PACKET_OUTGOING)),
        insn(RET_K, 0, 0, 0),
        insn(RET_K, 0, 0, u32::MAX),
    ]
}

/// With the kernel fast path, the filter of the socket that reads every
/// protocol: it refuses outgoing frames and untagged IPv4, which lassi
/// reads on its IPv4 socket after the LAN ingress chain ran; it keeps ARP,
/// IPv6, and every tagged frame (lassi counts and drops those; the ingress
/// chain drops them before the IPv4 socket would see them).
pub fn all_but_ipv4() -> Vec<Insn> {
    vec![
        insn(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        insn(JEQ_K, 5, 0, u32::from(libc::PACKET_OUTGOING)), // → refuse
        insn(LD_W_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),
        insn(JEQ_K, 0, 2, 0), // tagged → keep
        insn(LD_W_ABS, 0, 0, SKF_AD_PROTOCOL),
        insn(JEQ_K, 1, 0, libc::ETH_P_IP as u32), // → refuse
        insn(RET_K, 0, 0, u32::MAX),
        insn(RET_K, 0, 0, 0),
    ]
}

/// With the kernel fast path, the filter of the IPv4 socket: it refuses
/// frames the LAN ingress chain marked with `mark` (the kernel forwards
/// those), before they are copied.
pub fn unmarked(mark: u32) -> Vec<Insn> {
    vec![
        insn(LD_W_ABS, 0, 0, SKF_AD_MARK),
        insn(JSET_K, 1, 0, mark),
        insn(RET_K, 0, 0, u32::MAX),
        insn(RET_K, 0, 0, 0),
    ]
}

/// The steering program (see the module's documentation).
pub fn program() -> Vec<Insn> {
    // Jumps count the instructions skipped; the targets are named in the
    // comments, and `steering_program_jumps_land_where_meant` walks them.
    vec![
        /* 0 */ insn(LD_W_ABS, 0, 0, SKF_AD_PROTOCOL),
        /* 1 */ insn(JEQ_K, 0, 27, libc::ETH_P_IP as u32), // else -> engine (29)
        /* 2 */ insn(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        /* 3 */ insn(JEQ_K, 0, 25, u32::from(libc::PACKET_HOST)), // else -> engine
        // Fragments and packets with options: addresses only.
        /* 4 */
        insn(LD_H_ABS, 0, 0, NET + 6),
        /* 5 */ insn(JSET_K, 8, 0, 0x3fff), // MF or an offset -> no ports (14)
        /* 6 */ insn(LD_B_ABS, 0, 0, NET),
        /* 7 */ insn(JEQ_K, 0, 6, 0x45), // options -> no ports (14)
        /* 8 */ insn(LD_B_ABS, 0, 0, NET + 9),
        /* 9 */ insn(JEQ_K, 1, 0, libc::IPPROTO_TCP as u32), // -> ports (11)
        /* 10 */ insn(JEQ_K, 0, 3, libc::IPPROTO_UDP as u32), // else -> no ports
        /* 11 */ insn(LD_W_ABS, 0, 0, NET + 20),
        /* 12 */ insn(ST, 0, 0, 0),
        /* 13 */ insn(JA, 0, 0, 2), // -> addresses (16)
        /* 14 */ insn(LD_IMM, 0, 0, 0),
        /* 15 */ insn(ST, 0, 0, 0),
        // A = src ^ dst ^ ports, halves folded, then mixed by a
        // multiplication whose upper half depends on every bit: `% n`
        // reads low bits, and Linux picks connect()'s ports of one parity.
        /* 16 */
        insn(LD_W_ABS, 0, 0, NET + 12),
        /* 17 */ insn(TAX, 0, 0, 0),
        /* 18 */ insn(LD_W_ABS, 0, 0, NET + 16),
        /* 19 */ insn(XOR_X, 0, 0, 0),
        /* 20 */ insn(TAX, 0, 0, 0),
        /* 21 */ insn(LD_MEM, 0, 0, 0),
        /* 22 */ insn(XOR_X, 0, 0, 0),
        /* 23 */ insn(TAX, 0, 0, 0),
        /* 24 */ insn(RSH_K, 0, 0, 16),
        /* 25 */ insn(XOR_X, 0, 0, 0),
        /* 26 */ insn(MUL_K, 0, 0, 0x9e37_79b1),
        /* 27 */ insn(RSH_K, 0, 0, 16),
        /* 28 */ insn(RET_A, 0, 0, 0),
        /* 29 */ insn(RET_K, 0, 0, 0), // engine
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel gives the program: the frame's protocol and packet
    /// type, and its bytes from the network header on.
    struct Frame {
        protocol: u16,
        pkttype: u8,
        net: Vec<u8>,
        mark: u32,
        tagged: bool,
    }

    /// A classic-BPF interpreter for the instructions the program uses,
    /// with the kernel's rules: a load past the end ends the program with
    /// 0; a jump past the end is a bug.
    fn run(prog: &[Insn], f: &Frame) -> u32 {
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        let load = |k: u32, size: usize| -> Option<u32> {
            match k {
                SKF_AD_PROTOCOL => Some(u32::from(f.protocol)),
                SKF_AD_PKTTYPE => Some(u32::from(f.pkttype)),
                SKF_AD_MARK => Some(f.mark),
                SKF_AD_VLAN_TAG_PRESENT => Some(u32::from(f.tagged)),
                k if k >= NET => {
                    let at = (k - NET) as usize;
                    let b = f.net.get(at..at + size)?;
                    Some(b.iter().fold(0, |v, &b| v << 8 | u32::from(b)))
                }
                _ => panic!("load outside the network header: {k:#x}"),
            }
        };
        loop {
            let i = prog.get(pc).expect("ran off the end");
            pc += 1;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                    let size = [4, 2, 1][usize::from((i.code - LD_W_ABS) / 8)];
                    match load(i.k, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                LD_IMM => a = i.k,
                LD_MEM => a = mem[i.k as usize],
                ST => mem[i.k as usize] = a,
                TAX => x = a,
                XOR_X => a ^= x,
                RSH_K => a >>= i.k,
                MUL_K => a = a.wrapping_mul(i.k),
                JA => pc += i.k as usize,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_A => return a,
                RET_K => return i.k,
                c => panic!("opcode {c:#x} not interpreted"),
            }
        }
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], ports: (u16, u16)) -> Frame {
        let mut net = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
        net.extend_from_slice(&src);
        net.extend_from_slice(&dst);
        net.extend_from_slice(&ports.0.to_be_bytes());
        net.extend_from_slice(&ports.1.to_be_bytes());
        net.resize(40, 0);
        Frame {
            protocol: libc::ETH_P_IP as u16,
            pkttype: libc::PACKET_HOST,
            net,
            mark: 0,
            tagged: false,
        }
    }

    const CLIENT: [u8; 4] = [10, 1, 0, 2];
    const SERVER: [u8; 4] = [198, 51, 100, 10];

    #[test]
    fn steering_program_jumps_land_where_meant() {
        let prog = program();
        for (pc, i) in prog.iter().enumerate() {
            let next = pc + 1;
            match i.code {
                JA => assert!(next + (i.k as usize) < prog.len(), "ja at {pc}"),
                JEQ_K | JSET_K => {
                    assert!(
                        next + usize::from(i.jt.max(i.jf)) < prog.len(),
                        "jump at {pc}"
                    )
                }
                _ => {}
            }
        }
        assert!(prog.len() < 4096, "kernel limit BPF_MAXINSNS");
    }

    #[test]
    fn lassis_own_sends_are_filtered_out_and_nothing_else() {
        let prog = drop_outgoing();
        let mut f = ipv4(6, CLIENT, SERVER, (40000, 443));
        for (pkttype, kept) in [
            (libc::PACKET_OUTGOING, 0),
            (libc::PACKET_HOST, u32::MAX),
            (libc::PACKET_BROADCAST, u32::MAX),
            (libc::PACKET_MULTICAST, u32::MAX),
        ] {
            f.pkttype = pkttype;
            assert_eq!(run(&prog, &f), kept, "packet type {pkttype}");
        }
    }

    #[test]
    fn kernel_fast_path_sockets_split_the_traffic_between_them() {
        let all = all_but_ipv4();
        let v4 = unmarked(0x0100_0000);
        let mut f = ipv4(6, CLIENT, SERVER, (40000, 443));
        // Untagged IPv4: the IPv4 socket's, unless marked for the kernel.
        assert_eq!(run(&all, &f), 0);
        assert_eq!(run(&v4, &f), u32::MAX);
        f.mark = 0x0100_0000 | 0x2a;
        assert_eq!(run(&v4, &f), 0);
        f.mark = 0x2a; // another mark bit of the operator's
        assert_eq!(run(&v4, &f), u32::MAX);
        // Tagged IPv4 (dropped at ingress before the IPv4 socket): kept here.
        f.tagged = true;
        assert_eq!(run(&all, &f), u32::MAX);
        // ARP and IPv6 kept; lassi's own sends refused.
        for protocol in [libc::ETH_P_ARP, libc::ETH_P_IPV6] {
            let mut g = ipv4(6, CLIENT, SERVER, (1, 2));
            g.protocol = protocol as u16;
            assert_eq!(run(&all, &g), u32::MAX);
            g.pkttype = libc::PACKET_OUTGOING;
            assert_eq!(run(&all, &g), 0);
        }
    }

    #[test]
    fn what_only_the_engine_handles_goes_to_the_engine_thread() {
        let prog = program();
        let mut arp = ipv4(17, CLIENT, SERVER, (1000, 53));
        arp.protocol = libc::ETH_P_ARP as u16;
        assert_eq!(run(&prog, &arp), 0);
        let mut v6 = ipv4(17, CLIENT, SERVER, (1000, 53));
        v6.protocol = libc::ETH_P_IPV6 as u16;
        assert_eq!(run(&prog, &v6), 0);
        for pkttype in [libc::PACKET_BROADCAST, libc::PACKET_MULTICAST] {
            // DHCP discoveries from many addresses and ports: all to 0.
            for n in 0..64u8 {
                let mut f = ipv4(17, [0, 0, 0, n], [255; 4], (68 + u16::from(n), 67));
                f.pkttype = pkttype;
                assert_eq!(run(&prog, &f), 0);
            }
        }
    }

    #[test]
    fn unicast_flows_spread_and_each_stays_on_one_thread() {
        let prog = program();
        // Consecutive ports, and every other or every fourth one (Linux
        // gives connect() ports of one parity): flows spread over 2, 3
        // and 4 threads alike.
        for (proto, step) in [(6u8, 1), (6, 2), (17, 2), (6, 4)] {
            for threads in 2..=4u32 {
                let mut seen = [0usize; 4];
                for n in 0..64u16 {
                    let f = ipv4(proto, CLIENT, SERVER, (40000 + n * step, 5201));
                    let v = run(&prog, &f);
                    assert_eq!(v, run(&prog, &f), "same flow, same thread");
                    seen[(v % threads) as usize] += 1;
                }
                let fair = 64 / threads as usize;
                assert!(
                    seen[..threads as usize].iter().all(|&n| n >= fair / 2),
                    "proto {proto}, ports {step} apart, {threads} threads: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn fragments_and_options_stay_together_by_addresses() {
        let prog = program();
        let first = ipv4(17, CLIENT, SERVER, (5000, 5001));
        let mut more = first.net.clone();
        more[6] = 0x20; // MF, offset 0: the first fragment
        let mut later = first.net.clone();
        later[6] = 0x00;
        later[7] = 0xb9; // offset 185, payload where ports were
        later[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let v = |net: Vec<u8>| {
            run(
                &prog,
                &Frame {
                    net,
                    ..ipv4(17, CLIENT, SERVER, (0, 0))
                },
            )
        };
        assert_eq!(v(more), v(later.clone()));
        let mut options = first.net.clone();
        options[0] = 0x46;
        assert_eq!(v(options), v(later));
        // A runt IPv4 header: the kernel ends the program with 0.
        assert_eq!(v(vec![0x45, 0, 0, 20]), 0);
    }
}
