//! The thin I/O shell: devices, sockets, firewall, and the forwarder (the
//! data-plane thread that drives the engine).

pub mod bpf;
pub mod clock;
pub mod firewall;
pub mod forwarder;
pub mod garden_resolver;
pub mod kernel_path;
pub mod kernel_shaper;
pub mod kernel_tables;
pub mod lan;
pub mod netlink;
pub mod operator;
pub mod pool;
pub mod ports;
pub mod queue;
pub mod resolver;
pub mod steer;
pub mod sys;
pub mod tc_hooks;
pub mod tun;
pub mod worker;
