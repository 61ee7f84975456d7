//! Checking a home agent's policy for 10,000 mobile nodes (issue 7: under one second):
//! parse, bind, expand to 40,002 SPD entries, look for shadowed and overlapping rules.
//! Printed beside a baseline from the same run: the bare TOML parse of the same file, and
//! the same check for 1,000 nodes (to show how it scales).
//! Run: `cargo bench -p spd-policies --bench check`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spd_policies::{check::check, load};

fn policy(nodes: usize) -> String {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/enterprise-home-agent.toml"
    ))
    .expect("example");
    base.replace("count = 5000", &format!("count = {nodes}"))
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[runs / 2]
}

fn full_check(text: &str) -> usize {
    let (p, c) = load("bench.toml", text).expect("valid policy");
    let w = check(&p, &c);
    assert!(w.is_empty(), "{w:?}");
    c.spd.len()
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent; keep that quick.
    let runs = if std::env::args().any(|a| a == "--bench") {
        7
    } else {
        1
    };
    let big = policy(10_000);
    let small = policy(1_000);
    let entries = full_check(&big);
    let t_big = median(runs, || {
        black_box(full_check(black_box(&big)));
    });
    let t_small = median(runs, || {
        black_box(full_check(black_box(&small)));
    });
    let t_toml = median(runs, || {
        black_box(big.parse::<toml_edit::Document<String>>().expect("toml"));
    });
    println!(
        "check, 10,000 mobile nodes ({entries} SPD entries): {:.1} ms (median of {runs})",
        t_big.as_secs_f64() * 1e3
    );
    println!("baseline, same run: 1,000 mobile nodes: {:.1} ms; bare TOML parse of the 10,000-node file: {:.3} ms", t_small.as_secs_f64() * 1e3, t_toml.as_secs_f64() * 1e3);
    println!(
        "target: under 1000 ms -> {}",
        if t_big < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}
