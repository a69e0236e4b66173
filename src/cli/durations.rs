//! Duration options, checked when the arguments are parsed: every one is a
//! finite, non-negative number of seconds (or milliseconds), within bounds
//! that make sense for what it controls. A value out of bounds is refused
//! by clap with the reason (exit status 2) before anything starts.
//!
//! The parsers here are for `value_parser = …` on clap arguments; the
//! message they return follows clap's "invalid value 'X' for '--flag'".

use std::time::Duration;

const MINUTE: f64 = 60.0;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;

/// Seconds as a number: finite and not negative.
fn secs_number(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (for example 0.5 or 10)"))?;
    if !secs.is_finite() {
        return Err(format!("{text:?} is not a finite number of seconds"));
    }
    if secs < 0.0 {
        return Err(format!(
            "{text:?} is negative: give a number of seconds ≥ 0"
        ));
    }
    Ok(secs)
}

/// Seconds between `min` and `max` (both inclusive), in words on failure.
fn secs_within(text: &str, min: f64, max: f64) -> Result<Duration, String> {
    let secs = secs_number(text)?;
    if secs < min {
        return Err(format!(
            "{secs} s is too short: it must be at least {min} s"
        ));
    }
    if secs > max {
        return Err(format!(
            "{secs} s is too long: it must be at most {max} s ({})",
            in_words(max)
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

fn in_words(secs: f64) -> String {
    if secs >= DAY && (secs % DAY) == 0.0 {
        let days = secs / DAY;
        format!("{days} day{}", if days == 1.0 { "" } else { "s" })
    } else if secs >= HOUR && (secs % HOUR) == 0.0 {
        format!("{} h", secs / HOUR)
    } else {
        format!("{secs} s")
    }
}

/// Any finite number of seconds ≥ 0 (`--linger`: 0 means no linger, and a
/// very long linger is a legitimate way to keep a node up).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs = secs_number(text)?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is too large a number of seconds"))
}

/// Shortest keep-alive interval: more often only burns bandwidth.
pub const KEEPALIVE_MIN: f64 = 0.1;
/// Longest keep-alive interval.
pub const KEEPALIVE_MAX: f64 = DAY;

/// `--keepalive`: 0.1 s to 1 day.
pub fn keepalive(text: &str) -> Result<Duration, String> {
    secs_within(text, KEEPALIVE_MIN, KEEPALIVE_MAX)
}

/// Shortest idle timeout: shorter would close links between keep-alives
/// and redial them in a storm.
pub const IDLE_MIN: f64 = 1.0;
/// Longest idle timeout.
pub const IDLE_MAX: f64 = 7.0 * DAY;

/// `--idle-timeout`: 1 s to 7 days (and longer than `--keepalive`, which
/// [`check_idle_vs_keepalive`] checks once both are known).
pub fn idle_timeout(text: &str) -> Result<Duration, String> {
    secs_within(text, IDLE_MIN, IDLE_MAX)
}

/// `--timeout` of the one-shot commands (dial and handshake): 0.1 s to
/// 1 h.
pub fn handshake_timeout(text: &str) -> Result<Duration, String> {
    secs_within(text, 0.1, HOUR)
}

/// An idle timeout no longer than the keep-alive interval closes every
/// quiet link before its keep-alive comes.
///
/// # Errors
/// A sentence for the user when `idle` ≤ `keepalive`.
pub fn check_idle_vs_keepalive(
    idle: Option<Duration>,
    keepalive: Option<Duration>,
) -> Result<(), String> {
    match (idle, keepalive) {
        (Some(idle), Some(keepalive)) if idle <= keepalive => Err(format!(
            "--idle-timeout ({} s) must be longer than --keepalive ({} s), or every quiet \
             link is closed before its keep-alive arrives (twice the interval or more is \
             a good choice)",
            idle.as_secs_f64(),
            keepalive.as_secs_f64()
        )),
        _ => Ok(()),
    }
}

/// Milliseconds as a float for the simulator (`--latency`, `--jitter`):
/// finite, 0 to 1 h.
pub fn sim_ms(text: &str) -> Result<f64, String> {
    let ms: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "{text:?} is not a finite number of milliseconds ≥ 0"
        ));
    }
    if ms > HOUR * 1000.0 {
        return Err(format!("{ms} ms is too long: at most 3600000 ms (1 h)"));
    }
    Ok(ms)
}

/// Longest virtual phase of the simulator (`--join-ms`, `--settle-ms`),
/// in ms: one day.
pub const SIM_PHASE_MAX_MS: u64 = 86_400_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_secs("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_secs("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_secs("1e9").unwrap(),
            Duration::from_secs(1_000_000_000)
        );
        for bad in ["-1", "soon", "inf", "NaN", "-0.5", "", "1e400"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_say_why() {
        assert_eq!(keepalive("0.1").unwrap(), Duration::from_millis(100));
        assert_eq!(keepalive("30").unwrap(), Duration::from_secs(30));
        let e = keepalive("0").unwrap_err();
        assert_eq!(e, "0 s is too short: it must be at least 0.1 s");
        assert!(keepalive("0.0001").unwrap_err().contains("at least 0.1 s"));
        assert!(keepalive("1e9")
            .unwrap_err()
            .contains("at most 86400 s (1 day)"));
        assert!(keepalive("nan")
            .unwrap_err()
            .contains("not a finite number"));
        assert!(keepalive("-3").unwrap_err().contains("negative"));
        assert!(idle_timeout("0").unwrap_err().contains("at least 1 s"));
        assert_eq!(idle_timeout("3").unwrap(), Duration::from_secs(3));
        assert!(handshake_timeout("0")
            .unwrap_err()
            .contains("at least 0.1 s"));
        assert!(handshake_timeout("1e6").unwrap_err().contains("(1 h)"));
        assert!(sim_ms("nan").is_err() && sim_ms("-1").is_err() && sim_ms("inf").is_err());
        assert_eq!(sim_ms("2.5").unwrap(), 2.5);
    }

    #[test]
    fn idle_must_outlast_keepalive() {
        let s = Duration::from_secs;
        assert!(check_idle_vs_keepalive(Some(s(3)), Some(s(1))).is_ok());
        assert!(check_idle_vs_keepalive(Some(s(3)), None).is_ok());
        assert!(check_idle_vs_keepalive(None, Some(s(3))).is_ok());
        let e = check_idle_vs_keepalive(Some(s(2)), Some(s(2))).unwrap_err();
        assert!(e.contains("must be longer than --keepalive"), "{e}");
    }
}
