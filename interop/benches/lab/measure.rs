//! Figures for the lab bench: min / median / max of samples, RFC 3339 timestamps of the
//! daemons' JSON logs turned into seconds since the epoch, and one iperf3 TCP run.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use interop::lab::Lab;

/// Min, median (mean of the two middle values for an even count) and max.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

pub fn summary(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        min: v[0],
        median,
        max: v[n - 1],
    })
}

/// Seconds since the epoch of a wall-clock instant.
pub fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-12-03T15:58:01.123456Z` (tracing-subscriber's JSON `timestamp`, UTC) as seconds
/// since the epoch. Only the `Z` form is accepted: the daemons log in UTC.
pub fn parse_rfc3339_utc(s: &str) -> Result<f64> {
    let bad = || format!("timestamp `{s}` is not YYYY-MM-DDTHH:MM:SS[.frac]Z");
    let body = s.strip_suffix('Z').with_context(bad)?;
    let (date, time) = body.split_once('T').with_context(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()
        .with_context(bad)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()
        .with_context(bad)?;
    if d.len() != 3 || t.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        bail!(bad());
    }
    let frac: f64 = format!("0.{frac}").parse().ok().with_context(bad)?;
    let days = days_from_civil(d[0], d[1], d[2]);
    Ok((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `HH:MM:SS.mmm` at the start of a charon log line, as seconds since midnight.
pub fn charon_time(line: &str) -> Option<f64> {
    let tok = line.split_whitespace().next()?;
    let (hms, ms) = tok.split_once('.')?;
    let t: Vec<u32> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 || ms.len() != 3 {
        return None;
    }
    let ms: u32 = ms.parse().ok()?;
    Some(f64::from(t[0] * 3600 + t[1] * 60 + t[2]) + f64::from(ms) / 1000.0)
}

/// One iperf3 TCP run (`-P 1`) from `src` in namespace `client` to `dst` in `server_ns`;
/// the receiver's bits per second.
pub fn iperf(
    lab: &mut Lab,
    client: &str,
    server_ns: &str,
    src: &str,
    dst: &str,
    secs: u32,
) -> Result<f64> {
    let log = lab.dir().join("iperf3-server.log");
    let server = lab.spawn(
        server_ns,
        &["iperf3", "-s", "-1", "-B", dst, "-p", "5201"],
        &log,
    )?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = secs.to_string();
    let out = lab.run(
        client,
        &[
            "timeout", "60", "iperf3", "-c", dst, "-B", src, "-p", "5201", "-P", "1", "-t", &s,
            "-J",
        ],
    );
    lab.stop(server);
    let out = out.with_context(|| format!("iperf3 {src} -> {dst}"))?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no sum_received in iperf3 output: {out}"))
}

/// The parsers and the median checked against hand-worked values before any figure is
/// trusted (a `harness = false` bench has no `#[test]`s; `main` runs this first).
pub fn self_check() -> Result<()> {
    // 2026-12-03T00:00:00Z is 20,790 days after the epoch.
    let want = (20_790 * 86_400 + 15 * 3600 + 58 * 60 + 1) as f64 + 0.25;
    let got = parse_rfc3339_utc("2026-12-03T15:58:01.250000Z")?;
    if got != want {
        bail!("parse_rfc3339_utc: {got} instead of {want}");
    }
    if parse_rfc3339_utc("2026-12-03T15:58:01+01:00").is_ok() {
        bail!("parse_rfc3339_utc accepted a non-UTC offset");
    }
    if charon_time("15:58:01.250 09[IKE] x") != Some(57_481.25) {
        bail!("charon_time misreads HH:MM:SS.mmm");
    }
    let s = summary(&[4.0, 1.0, 3.0, 2.0]).context("summary of four samples")?;
    if (s.min, s.median, s.max) != (1.0, 2.5, 4.0) {
        bail!("summary: {s:?}");
    }
    Ok(())
}
