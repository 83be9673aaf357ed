//! A network of its own for a cluster, so traffic between members can be cut and
//! delayed: each member in a network namespace, joined by a veth pair to a bridge the run
//! creates, on a private /24 (`10.<n>.0.<member+1>`; the bridge, where the harness's
//! clients come from, is `.254`). Links are cut with blackhole routes inside the
//! namespaces (both directions, or one: see [`Netns::cut_one_way`]) and slowed with `tc`
//! (netem, or a token bucket where the kernel lacks netem). Needs root
//! and iproute2; [`Netns::available`] says whether this machine has them.
//!
//! Names carry the harness's process id, so runs side by side do not meet, and
//! everything is deleted on drop. A run killed outright may leave `rb<pid>*` namespaces
//! and links behind: `ip netns list`, `ip link show type bridge`.

use std::process::{Command, Stdio};

/// The namespaced network of one cluster.
pub struct Netns {
    /// Prefix of every name: `rb<pid><k>` (interface names have 15 bytes at most).
    prefix: String,
    subnet: u8,
    members: usize,
    /// Blackhole routes in place, as (namespace of member, address cut off).
    cuts: Vec<(usize, usize)>,
    /// Members whose interface has a netem qdisc.
    delayed: Vec<usize>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Netns {
    /// Whether namespaces can be made here (root, iproute2).
    pub fn available() -> bool {
        let probe = format!("rbprobe{}", std::process::id());
        let made = ip(&["netns", "add", &probe]).is_ok();
        if made {
            let _ = ip(&["netns", "del", &probe]);
        }
        made
    }

    /// Builds the bridge and one namespace per member; `k` tells apart the networks of
    /// one process.
    pub fn create(members: usize, k: u32) -> Result<Netns, String> {
        let pid = std::process::id();
        // 10.<subnet>.0.0/24: spread over 10.64–10.191 by process and network.
        let subnet = 64 + ((pid.wrapping_mul(7) + k) % 128) as u8;
        let net = Netns {
            prefix: format!("rb{pid}{}", k % 10),
            subnet,
            members,
            cuts: Vec::new(),
            delayed: Vec::new(),
        };
        net.build().inspect_err(|_| net.destroy())?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    /// Member `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn host_end(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    fn member_end(&self, i: usize) -> String {
        format!("{}m{i}", self.prefix)
    }

    /// Member `i`'s address.
    pub fn address(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.subnet, i + 1)
    }

    fn build(&self) -> Result<(), String> {
        let bridge = self.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.{}.0.254/24", self.subnet), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..self.members {
            let (ns, host, member) = (self.namespace(i), self.host_end(i), self.member_end(i));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &member])?;
            ip(&["link", "set", &member, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &bridge, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.address(i)), "dev", &member])?;
            ip(&["-n", &ns, "link", "set", &member, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts traffic between members `a` and `b`, both ways.
    pub fn cut(&mut self, a: usize, b: usize) -> Result<(), String> {
        self.cut_one_way(a, b)?;
        self.cut_one_way(b, a)
    }

    /// Drops what member `from` sends to member `to`, and nothing the other way. Over TCP
    /// that is not a clean one-way link: `to`'s packets still arrive and their data is
    /// delivered to `from`, but `from`'s acknowledgements are lost, so only connections
    /// already open carry `to`'s messages to `from`, until `to` gives up on them (its
    /// send buffer, HTTP/2 keepalive or retransmission timeout); a new connection between
    /// the two cannot open either way.
    pub fn cut_one_way(&mut self, from: usize, to: usize) -> Result<(), String> {
        let target = format!("{}/32", self.address(to));
        ip(&["-n", &self.namespace(from), "route", "add", "blackhole", &target])?;
        self.cuts.push((from, to));
        Ok(())
    }

    /// Cuts member `i` off from every other member (clients still reach it).
    pub fn isolate(&mut self, i: usize) -> Result<(), String> {
        for other in (0..self.members).filter(|o| *o != i) {
            self.cut(i, other)?;
        }
        Ok(())
    }

    /// Delays (and drops some of) everything member `i` sends: `tc netem` where the
    /// kernel has it; else a token bucket (`tbf`) at `slow_kbit` whose queue holds
    /// `delay_ms` of traffic, so packets wait in it and those past it are dropped.
    /// Returns which of the two it used.
    pub fn delay(
        &mut self,
        i: usize,
        delay_ms: u64,
        jitter_ms: u64,
        loss_percent: u64,
        slow_kbit: u64,
    ) -> Result<&'static str, String> {
        let ns = self.namespace(i);
        let dev = self.member_end(i);
        let qdisc = ["-n", &ns, "qdisc", "add", "dev", &dev, "root"];
        let (delay, jitter, loss) =
            (format!("{delay_ms}ms"), format!("{jitter_ms}ms"), format!("{loss_percent}%"));
        let netem = [&qdisc[..], &["netem", "delay", &delay, &jitter, "loss", &loss]].concat();
        let used = match run("tc", &netem) {
            Ok(()) => "netem",
            Err(e) if e.contains("qdisc kind is unknown") => {
                let rate = format!("{slow_kbit}kbit");
                let tbf =
                    [&qdisc[..], &["tbf", "rate", &rate, "burst", "16kbit", "latency", &delay]]
                        .concat();
                run("tc", &tbf)?;
                "tbf"
            }
            Err(e) => return Err(e),
        };
        self.delayed.push(i);
        Ok(used)
    }

    /// Undoes every cut and delay.
    pub fn heal(&mut self) -> Result<(), String> {
        let mut first_error = Ok(());
        for (from, to) in std::mem::take(&mut self.cuts) {
            let target = format!("{}/32", self.address(to));
            let result = ip(&["-n", &self.namespace(from), "route", "del", "blackhole", &target]);
            first_error = first_error.and(result);
        }
        for i in std::mem::take(&mut self.delayed) {
            let result = run(
                "tc",
                &["-n", &self.namespace(i), "qdisc", "del", "dev", &self.member_end(i), "root"],
            );
            first_error = first_error.and(result);
        }
        first_error
    }

    fn destroy(&self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        for i in 0..self.members {
            let _ = ip(&["netns", "del", &self.namespace(i)]);
            let _ = ip(&["link", "del", &self.host_end(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.destroy();
    }
}
