//! The README's demo command works: it registers through the NAT, gets a dynamic IPv4 home
//! address, keeps it across a home agent restart, deregisters, and leaves nothing behind.

use std::process::Command;

#[test]
fn demo_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_dsmip-demo"))
        .output()
        .expect("run dsmip-demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let has = |s: &str| text.lines().filter(|l| l.contains(s)).count();
    assert_eq!(
        has("NAT detected: IPv4 CoA option 10.1.0.2 but outer source 192.0.2.2"),
        3,
        "{text}"
    );
    assert_eq!(
        has("IPv4 home address: 198.51.100.2/32, status 0"),
        3,
        "{text}"
    );
    assert_eq!(has("kept from before the restart"), 1, "{text}");
    assert_eq!(has("keepalive every 110 s"), 2, "{text}");
    assert!(
        text.trim_end().ends_with("The tests: scripts/test-all.sh"),
        "{text}"
    );
    assert!(text.contains("binding cache: empty"), "{text}");
}
