//! Load that outlives its servers: client threads keep requesting tokens while a test kills
//! and restarts nodes under them, and checks afterwards that nothing a client received was lost
//! and that serials and genTime stay consistent across every restart.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::der::ReqSpec;

/// Where one node answers now: its incarnation (0 for the first start, +1 per restart) and URL.
/// The test moves it forward after each restart; the load reads it before every request.
#[derive(Clone)]
pub struct Target(Arc<RwLock<(u32, String)>>);

impl Target {
    /// A target at incarnation 0.
    pub fn new(url: String) -> Target {
        Target(Arc::new(RwLock::new((0, url))))
    }

    /// Points the load at the node's next incarnation, answering at `url`.
    pub fn restarted(&self, url: String) {
        let mut target = self.0.write().expect("target lock");
        target.0 += 1;
        target.1 = url;
    }

    fn get(&self) -> (u32, String) {
        self.0.read().expect("target lock").clone()
    }
}

/// SIGKILLs `server` `kills` times under `load`, `pause` apart (and once more `pause` after
/// the last restart), restarting it on its data each time and pointing `target` at the new
/// incarnation; then stops the load. Panics unless some request was cut (the kills landed
/// under load) and every incarnation is consistent with its predecessors
/// ([`assert_consistent_across_restarts`]). Returns every token received, for the caller's
/// archive check.
pub fn kill_under_load(
    load: Load,
    server: &mut crate::TsaServer,
    target: &Target,
    kills: u32,
    pause: Duration,
) -> Vec<Received> {
    for _ in 0..kills {
        std::thread::sleep(pause);
        server.restart();
        target.restarted(server.url());
    }
    std::thread::sleep(pause);
    let (received, failures) = load.stop();
    eprintln!(
        "{} tokens received, {failures} requests cut or refused across {kills} kills",
        received.len()
    );
    assert!(
        failures > 0,
        "no request was cut: the kills did not land under load"
    );
    assert_consistent_across_restarts(&received, kills + 1);
    received
}

/// A token a client received: which node and incarnation answered it, and what it says.
#[derive(Debug, Clone)]
pub struct Received {
    /// Index of the target in [`Load::start`]'s list.
    pub node: usize,
    /// The node's incarnation that answered.
    pub incarnation: u32,
    /// The token's serial number.
    pub serial: u64,
    /// genTime, milliseconds since the epoch.
    pub gen_time_ms: i64,
    /// The token's DER, as received.
    pub der: Vec<u8>,
}

/// Client threads hammering a set of targets until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Vec<Received>>>,
}

impl Load {
    /// Starts `per_target` client threads on each target. A transport error (the node was
    /// killed under the request, or is restarting) or a refusal is counted and retried after a
    /// short pause; a granted token is kept.
    pub fn start(targets: &[Target], per_target: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let threads = targets
            .iter()
            .enumerate()
            .flat_map(|(node, target)| (0..per_target).map(move |t| (node, t, target.clone())))
            .map(|(node, t, target)| {
                let (stop, failures) = (Arc::clone(&stop), Arc::clone(&failures));
                std::thread::spawn(move || {
                    let agent = crate::agent(Duration::from_secs(10));
                    let mut received = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let (incarnation, url) = target.get();
                        let spec =
                            ReqSpec::sha256(format!("node {node} thread {t} #{i}").as_bytes());
                        let reply = agent
                            .post(&url)
                            .header("Content-Type", "application/timestamp-query")
                            .send(&spec.encode()[..])
                            .ok()
                            .and_then(|mut r| {
                                (r.status() == 200).then(|| r.body_mut().read_to_vec().ok())?
                            })
                            .and_then(|body| pki::token::ParsedToken::parse(&body).ok());
                        match reply {
                            Some(token) => {
                                let info = token.info();
                                received.push(Received {
                                    node,
                                    incarnation,
                                    serial: u64::from_str_radix(&info.serial_hex, 16)
                                        .expect("serial fits u64"),
                                    gen_time_ms: token.gen_time().to_unix_millis(),
                                    der: token.der,
                                });
                            }
                            None => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    received
                })
            })
            .collect();
        Load {
            stop,
            failures,
            threads,
        }
    }

    /// How many tokens the clients have been refused or lost so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns every token received, and the number of failed requests.
    pub fn stop(self) -> (Vec<Received>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let received = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("client thread"))
            .collect();
        (received, self.failures.load(Ordering::Relaxed))
    }
}

/// Panics unless serials are unique, and, for each node, every incarnation's tokens come after
/// all of its earlier incarnations' tokens: a higher serial (a restarted node never reuses a
/// reserved block) and a genTime not earlier. Also asks that every incarnation answered.
pub fn assert_consistent_across_restarts(received: &[Received], incarnations: u32) {
    let mut seen = HashSet::new();
    for r in received {
        assert!(seen.insert(r.serial), "serial {} received twice", r.serial);
    }
    let nodes: HashSet<usize> = received.iter().map(|r| r.node).collect();
    for node in nodes {
        let mut earlier: Option<(u64, i64)> = None;
        for incarnation in 0..incarnations {
            let this: Vec<&Received> = received
                .iter()
                .filter(|r| r.node == node && r.incarnation == incarnation)
                .collect();
            if this.is_empty() {
                // Only the restarted node has later incarnations.
                assert!(
                    incarnation > 0 && earlier.is_some(),
                    "node {node} answered nothing in its first incarnation"
                );
                continue;
            }
            let min_serial = this.iter().map(|r| r.serial).min().expect("non-empty");
            let min_time = this.iter().map(|r| r.gen_time_ms).min().expect("non-empty");
            if let Some((max_serial, max_time)) = earlier {
                assert!(
                    min_serial > max_serial,
                    "node {node} incarnation {incarnation} issued serial {min_serial}, not above \
                     {max_serial} of an earlier incarnation"
                );
                assert!(
                    min_time >= max_time,
                    "node {node} incarnation {incarnation}: genTime {min_time} ms went back \
                     before {max_time} ms of an earlier incarnation"
                );
            }
            let max_serial = this.iter().map(|r| r.serial).max().expect("non-empty");
            let max_time = this.iter().map(|r| r.gen_time_ms).max().expect("non-empty");
            earlier = Some(match earlier {
                Some((s, t)) => (s.max(max_serial), t.max(max_time)),
                None => (max_serial, max_time),
            });
        }
    }
}

/// Panics unless every received token is in `archived` (serial -> DER), byte for byte.
/// The archive may hold more: a token committed just before a kill whose reply never left.
pub fn assert_received_archived(received: &[Received], archived: &HashMap<u64, Vec<u8>>) {
    for r in received {
        let row = archived.get(&r.serial).unwrap_or_else(|| {
            panic!(
                "serial {} (node {}, incarnation {}) was received but is not in the archive",
                r.serial, r.node, r.incarnation
            )
        });
        assert!(
            row == &r.der,
            "the archived token {} differs from the one received",
            r.serial
        );
    }
}

/// Every token of the SQLite archive at `db`, read with Python's sqlite3 (an independent reader,
/// read-only): serial -> DER.
pub fn sqlite_tokens(db: &Path) -> HashMap<u64, Vec<u8>> {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
        for s, t in c.execute('SELECT serial, token FROM tokens'):\n\
        \x20   print('%d %s' % (s, t.hex()))\n";
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = crate::run(Command::new(python).args(["-c", script]).arg(db));
    out.assert_ok();
    out.stdout
        .lines()
        .map(|l| {
            let (serial, token) = l.split_once(' ').expect("serial token");
            (
                serial.parse().expect("serial"),
                hex::decode(token).expect("hex"),
            )
        })
        .collect()
}
