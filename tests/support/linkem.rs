//! A userspace link emulator: what `tc netem` does, for kernels without
//! `sch_netem` (`CONFIG_NET_SCH_NETEM` unset, and no module support to load
//! it). Used by the chaos lab in `netns.rs` when netem is missing.
//!
//! It stands in for the lab's bridge. A thread enters the bridge
//! namespace, opens one `AF_PACKET` socket on each bridge-side veth end
//! (a *port*), and switches Ethernet frames between the ports as a learning
//! bridge does — except that every frame goes through two shaping stages:
//! the *up* direction of the port it came in on (host → bridge, like netem
//! on the host's `eth0` egress) and the *down* direction of the port it
//! goes out on (bridge → host, like netem on the bridge port's egress).
//! Each stage, in netem's order:
//!
//! * **loss**: the frame is dropped with probability `loss`;
//! * **delay**: `delay` plus a uniform jitter in `[-jitter, +jitter]`, each
//!   frame on its own, so frames overtake each other as with netem's
//!   jitter; with probability `reorder` a frame skips the delay altogether
//!   (netem's `reorder P`, which sends that share at once);
//! * **rate**: frames leave one after the other at `rate` bits per second
//!   (netem's `rate`), after at most `queue` of backlog; beyond it they
//!   are dropped (a tail drop, as a full qdisc).
//!
//! The nodes' TCP runs in the kernel on real veth links; only the wire in
//! between is emulated. Frames cross as the kernel hands them over, with
//! their `virtio_net_hdr` (`PACKET_VNET_HDR`): a frame whose checksum the
//! sender left to "hardware" keeps that state to the receiver instead of
//! arriving with a bad checksum. The lab sets `gso_max_segs 1` on the
//! hosts' `eth0`, so each frame is one wire packet (at most 1,514 bytes;
//! [`Stats::max_frame`] shows it) and loss hits single segments.
//!
//! A *cut* drops every frame between ports of different groups, as taking
//! the lab's trunk down does. The emulator stops (and its thread ends) when
//! dropped; the lab drops it before deleting the namespaces.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// `PACKET_VNET_HDR` from `<linux/if_packet.h>`.
const PACKET_VNET_HDR: libc::c_int = 15;
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `PACKET_OUTGOING`, the packet type of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `sizeof(struct virtio_net_hdr)`.
const VNET_HDR: usize = 10;

/// How one direction of a link treats frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shaping {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform jitter around it (±).
    pub jitter: Duration,
    /// Probability a frame is lost (0..1).
    pub loss: f64,
    /// Probability a frame skips the delay (netem `reorder`).
    pub reorder: f64,
    /// Bits per second, or unlimited.
    pub rate_bps: Option<u64>,
    /// Backlog (bytes) beyond which a rate-limited direction drops.
    pub queue_bytes: usize,
}

impl Shaping {
    /// A perfect wire.
    pub const CLEAN: Shaping = Shaping {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        reorder: 0.0,
        rate_bps: None,
        queue_bytes: 64 * 1024,
    };
}

/// One bridge-side veth end and its link's two directions.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// The interface's name in the bridge namespace.
    pub name: String,
    /// Frames from the host (entering the emulator on this port).
    pub up: Shaping,
    /// Frames to the host (leaving the emulator on this port).
    pub down: Shaping,
    /// Side of a cut this port is on.
    pub group: usize,
}

/// What the emulator did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames read from the ports.
    pub frames_in: u64,
    /// Frame copies written to a port.
    pub frames_out: u64,
    /// Frame copies lost to `loss`.
    pub lost: u64,
    /// Frame copies dropped by a full rate-limited queue.
    pub overflowed: u64,
    /// Frame copies dropped by the cut.
    pub cut: u64,
    /// Frame copies scheduled to leave before a frame that came in earlier
    /// on the same pair of ports (overtaking).
    pub reordered: u64,
    /// Writes that failed.
    pub send_errors: u64,
    /// The largest frame seen (Ethernet header included).
    pub max_frame: usize,
}

impl Stats {
    /// Share of frame copies lost to `loss`.
    pub fn loss_ratio(&self) -> f64 {
        let tried = self.frames_out + self.lost + self.overflowed;
        if tried == 0 {
            0.0
        } else {
            self.lost as f64 / tried as f64
        }
    }
}

#[derive(Debug, Default)]
struct Control {
    cut: bool,
    stats: Stats,
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    control: Arc<Mutex<Control>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts the emulator in namespace `netns` on `ports` (which must
    /// exist there and be up). Panics if it cannot open them.
    pub fn start(netns: &str, ports: Vec<PortSpec>, seed: u64) -> Emulator {
        let control = Arc::new(Mutex::new(Control::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let netns = netns.to_owned();
        let thread = {
            let (control, stop) = (control.clone(), stop.clone());
            thread::Builder::new()
                .name("linkem".into())
                .spawn(move || {
                    let sockets = match open_ports(&netns, &ports) {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut sw = Switch::new(ports, sockets, seed, control);
                    sw.run(&stop);
                })
                .expect("spawn the link emulator thread")
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("link emulator: {e}"),
            Err(e) => panic!("link emulator did not start: {e}"),
        }
        Emulator {
            control,
            stop,
            thread: Some(thread),
        }
    }

    /// Cuts (drops every frame between groups) or restores.
    pub fn set_cut(&self, cut: bool) {
        self.control.lock().unwrap_or_else(|e| e.into_inner()).cut = cut;
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.control.lock().unwrap_or_else(|e| e.into_inner()).stats
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, AtomicOrdering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An owned file descriptor.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        unsafe {
            libc::close(self.0);
        }
    }
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Enters `netns` (this thread only) and opens a packet socket per port.
fn open_ports(netns: &str, ports: &[PortSpec]) -> Result<Vec<Fd>, String> {
    let path = CString::new(format!("/run/netns/{netns}")).expect("no NUL");
    let ns = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if ns < 0 {
        return Err(os_error(&format!("open /run/netns/{netns}")));
    }
    let ns = Fd(ns);
    if unsafe { libc::setns(ns.0, libc::CLONE_NEWNET) } != 0 {
        return Err(os_error(&format!("setns into {netns}")));
    }
    let mut out = Vec::new();
    for p in ports {
        let name = CString::new(p.name.as_str()).expect("no NUL");
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(os_error(&format!("no interface {} in {netns}", p.name)));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if fd < 0 {
            return Err(os_error("socket(AF_PACKET)"));
        }
        let fd = Fd(fd);
        let one: libc::c_int = 1;
        let set = |level, opt, value: libc::c_int| unsafe {
            libc::setsockopt(
                fd.0,
                level,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set(libc::SOL_PACKET, PACKET_VNET_HDR, one) != 0 {
            return Err(os_error("PACKET_VNET_HDR"));
        }
        // Frames we send come back as PACKET_OUTGOING unless ignored; they
        // are also filtered below, for kernels without this option.
        let _ = set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, one);
        let _ = set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        let _ = set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        let bound = unsafe {
            libc::bind(
                fd.0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(os_error(&format!("bind to {}", p.name)));
        }
        out.push(fd);
    }
    Ok(out)
}

/// A tiny xorshift generator (the lab prints its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction's running state.
struct Stage {
    shape: Shaping,
    /// When the rate-limited wire is next free.
    next_free: Instant,
}

enum Verdict {
    Pass(Instant),
    Lost,
    Overflow,
}

impl Stage {
    fn new(shape: Shaping) -> Stage {
        Stage {
            shape,
            next_free: Instant::now(),
        }
    }

    /// When a frame of `len` bytes arriving at `at` leaves this stage.
    fn pass(&mut self, at: Instant, len: usize, rng: &mut Rng) -> Verdict {
        let s = &self.shape;
        if s.loss > 0.0 && rng.unit() < s.loss {
            return Verdict::Lost;
        }
        let mut t = at;
        let skip = s.reorder > 0.0 && rng.unit() < s.reorder;
        if !skip && !s.delay.is_zero() {
            let jitter = s.jitter.as_secs_f64();
            let offset = (rng.unit() * 2.0 - 1.0) * jitter;
            let d = (s.delay.as_secs_f64() + offset).max(0.0);
            t += Duration::from_secs_f64(d);
        }
        if let Some(rate) = s.rate_bps {
            let start = t.max(self.next_free);
            let backlog = start.saturating_duration_since(t);
            let limit = Duration::from_secs_f64(s.queue_bytes as f64 * 8.0 / rate as f64);
            if backlog > limit {
                return Verdict::Overflow;
            }
            t = start + Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            self.next_free = t;
        }
        Verdict::Pass(t)
    }
}

/// A frame waiting to leave.
struct Pending {
    due: Instant,
    seq: u64,
    port: usize,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct Switch {
    ports: Vec<PortSpec>,
    sockets: Vec<Fd>,
    up: Vec<Stage>,
    down: Vec<Stage>,
    macs: HashMap<[u8; 6], usize>,
    /// The latest departure scheduled per (in port, out port).
    last_due: HashMap<(usize, usize), Instant>,
    queue: BinaryHeap<Pending>,
    seq: u64,
    rng: Rng,
    control: Arc<Mutex<Control>>,
    stats: Stats,
}

impl Switch {
    fn new(
        ports: Vec<PortSpec>,
        sockets: Vec<Fd>,
        seed: u64,
        control: Arc<Mutex<Control>>,
    ) -> Self {
        Switch {
            up: ports.iter().map(|p| Stage::new(p.up)).collect(),
            down: ports.iter().map(|p| Stage::new(p.down)).collect(),
            ports,
            sockets,
            macs: HashMap::new(),
            last_due: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng(seed | 1),
            control,
            stats: Stats::default(),
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 65_536 + VNET_HDR];
        let mut fds: Vec<libc::pollfd> = self
            .sockets
            .iter()
            .map(|fd| libc::pollfd {
                fd: fd.0,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        while !stop.load(AtomicOrdering::Relaxed) {
            let now = Instant::now();
            let wait = match self.queue.peek() {
                Some(p) => p.due.saturating_duration_since(now),
                None => Duration::from_millis(20),
            }
            .min(Duration::from_millis(20));
            // Round up: waking early only loops again.
            let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            let cut = {
                let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
                c.stats = self.stats;
                c.cut
            };
            if n > 0 {
                let ready: Vec<usize> = (fds.iter().enumerate())
                    .filter(|(_, f)| f.revents & libc::POLLIN != 0)
                    .map(|(i, _)| i)
                    .collect();
                for i in ready {
                    self.drain(i, &mut buf, cut);
                }
            }
            self.send_due();
        }
    }

    /// Reads every frame waiting on port `i`.
    fn drain(&mut self, i: usize, buf: &mut [u8], cut: bool) {
        loop {
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    self.sockets[i].0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return; // EAGAIN, or an error: poll again.
            }
            let n = n as usize;
            if sll.sll_pkttype == PACKET_OUTGOING || n < VNET_HDR + 14 {
                continue;
            }
            self.forward(i, &buf[..n], cut);
        }
    }

    fn forward(&mut self, from: usize, frame: &[u8], cut: bool) {
        let now = Instant::now();
        let eth = &frame[VNET_HDR..];
        self.stats.frames_in += 1;
        self.stats.max_frame = self.stats.max_frame.max(eth.len());
        let dst: [u8; 6] = eth[0..6].try_into().expect("6 bytes");
        let src: [u8; 6] = eth[6..12].try_into().expect("6 bytes");
        if src[0] & 1 == 0 {
            self.macs.insert(src, from);
        }
        let targets: Vec<usize> = match self.macs.get(&dst) {
            Some(&p) if dst[0] & 1 == 0 => vec![p],
            _ => (0..self.ports.len()).collect(),
        };
        let t1 = match self.up[from].pass(now, eth.len(), &mut self.rng) {
            Verdict::Pass(t) => t,
            Verdict::Lost => {
                self.stats.lost += 1;
                return;
            }
            Verdict::Overflow => {
                self.stats.overflowed += 1;
                return;
            }
        };
        for to in targets {
            if to == from {
                continue;
            }
            if cut && self.ports[to].group != self.ports[from].group {
                self.stats.cut += 1;
                continue;
            }
            let t2 = match self.down[to].pass(t1, eth.len(), &mut self.rng) {
                Verdict::Pass(t) => t,
                Verdict::Lost => {
                    self.stats.lost += 1;
                    continue;
                }
                Verdict::Overflow => {
                    self.stats.overflowed += 1;
                    continue;
                }
            };
            let last = self.last_due.entry((from, to)).or_insert(t2);
            if t2 < *last {
                self.stats.reordered += 1;
            } else {
                *last = t2;
            }
            self.seq += 1;
            self.queue.push(Pending {
                due: t2,
                seq: self.seq,
                port: to,
                frame: frame.to_vec(),
            });
        }
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        while self.queue.peek().is_some_and(|p| p.due <= now) {
            let p = self.queue.pop().expect("peeked");
            let n = unsafe {
                libc::send(
                    self.sockets[p.port].0,
                    p.frame.as_ptr().cast(),
                    p.frame.len(),
                    0,
                )
            };
            if n < 0 {
                self.stats.send_errors += 1;
            } else {
                self.stats.frames_out += 1;
            }
        }
    }
}
