//! Parsing of duration and rate option values (`--timeout 1.5s`, `--rate 5/s`).
//!
//! This module owns the syntax of those values and nothing else: what a timeout or rate does is
//! the runner's business.
//!
//! - Duration: a decimal number followed by `ms`, `s`, `m` or `h`; a bare number is seconds
//!   (`10`, `1.5s`, `300ms`, `2m`, `1h`).
//! - Rate: a decimal count, `/`, and a unit `s`, `m` or `h` (`5/s`, `100/m`, `0.5/s`).
//!
//! Arithmetic is exact (decimal, in nanoseconds): `0.1s` is 100 ms, not 99.999…ms. `humantime`
//! was considered, but it rejects bare numbers and fractions like `1.5s`, both of which users
//! type.

use std::fmt;
use std::time::Duration;

use miette::{Diagnostic, SourceSpan};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A malformed duration or rate, with a span into the value.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("invalid {what} {src:?}: {reason}")]
#[diagnostic(code(sortie::units::invalid))]
pub struct UnitError {
    what: &'static str,
    reason: String,
    #[help]
    help: &'static str,
    #[source_code]
    src: String,
    #[label("{reason}")]
    span: SourceSpan,
}

const DURATION_HELP: &str =
    "write a number with a unit: 300ms, 1.5s, 2m or 1h (a bare number means seconds)";
const RATE_HELP: &str = "write a count per unit of time: 5/s, 100/m, 0.5/s or 30/h";

impl UnitError {
    fn duration(input: &str, reason: impl Into<String>, span: std::ops::Range<usize>) -> Self {
        Self::new("duration", DURATION_HELP, input, reason, span)
    }

    fn rate(input: &str, reason: impl Into<String>, span: std::ops::Range<usize>) -> Self {
        Self::new("rate", RATE_HELP, input, reason, span)
    }

    fn new(
        what: &'static str,
        help: &'static str,
        input: &str,
        reason: impl Into<String>,
        span: std::ops::Range<usize>,
    ) -> Self {
        Self {
            what,
            reason: reason.into(),
            help,
            src: input.to_owned(),
            span: SourceSpan::new(span.start.into(), span.len().max(1)),
        }
    }

    /// `"duration"` or `"rate"`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The value as given.
    pub fn input(&self) -> &str {
        &self.src
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Byte range of the offending part of the value.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.span.offset()..self.span.offset() + self.span.len()
    }
}

/// A non-negative decimal as `mantissa / 10^scale`.
struct Decimal {
    mantissa: u128,
    scale: u32,
}

/// Parses `[0-9]+(\.[0-9]+)?` or `\.[0-9]+` / `[0-9]+\.`; at most 30 significant characters.
fn decimal(s: &str) -> Option<Decimal> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 30
    {
        return None;
    }
    let mut mantissa: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa * 10 + u128::from(b - b'0');
    }
    Some(Decimal {
        mantissa,
        scale: u32::try_from(frac.len()).ok()?,
    })
}

/// Nanoseconds in one `unit`, if it is a known unit.
fn unit_nanos(unit: &str, allow_ms: bool) -> Option<u128> {
    Some(match unit {
        "ms" if allow_ms => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Splits leading number characters from the unit.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a duration: `1.5s`, `300ms`, `2m`, `1h`, or a bare number of seconds (`10`).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let lead = text.len() - text.trim_start().len();
    let s = text.trim();
    if s.is_empty() {
        return Err(UnitError::duration(
            text,
            "the value is empty",
            0..text.len(),
        ));
    }
    if s.starts_with('-') {
        return Err(UnitError::duration(
            text,
            "a duration cannot be negative",
            lead..lead + 1,
        ));
    }
    let (number, unit) = split_number(s);
    let num_span = lead..lead + number.len();
    let Some(value) = decimal(number) else {
        let span = if number.is_empty() {
            lead..lead + s.len()
        } else {
            num_span
        };
        return Err(UnitError::duration(text, "expected a number", span));
    };
    let unit_span = num_span.end..lead + s.len();
    let per = if unit.is_empty() {
        NANOS_PER_SEC
    } else {
        unit_nanos(unit, true).ok_or_else(|| {
            UnitError::duration(
                text,
                format!("unknown unit {unit:?}; use ms, s, m or h"),
                unit_span,
            )
        })?
    };
    let nanos = value
        .mantissa
        .checked_mul(per)
        .map(|n| n / 10u128.pow(value.scale));
    let too_large = || UnitError::duration(text, "the duration is too large", lead..lead + s.len());
    let nanos = nanos.ok_or_else(too_large)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_large())?;
    // The remainder is below 10^9, so it fits.
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// A rate of events per unit of time, such as job starts per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time between two events, exact to the nanosecond (rounded down).
    interval: Duration,
}

impl Rate {
    /// Time between two consecutive events (`5/s` gives 200 ms, `0.5/s` gives 2 s).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Events per second.
    pub fn per_second(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one every {:?}", self.interval)
    }
}

/// Parses a rate: `5/s`, `100/m`, `0.5/s`, `30/h`.
pub fn parse_rate(text: &str) -> Result<Rate, UnitError> {
    let lead = text.len() - text.trim_start().len();
    let s = text.trim();
    if s.is_empty() {
        return Err(UnitError::rate(text, "the value is empty", 0..text.len()));
    }
    let Some((count, unit)) = s.split_once('/') else {
        return Err(UnitError::rate(
            text,
            "expected COUNT/UNIT",
            lead..lead + s.len(),
        ));
    };
    let count_span = lead..lead + count.len();
    let unit_span = count_span.end + 1..lead + s.len();
    let Some(value) = decimal(count) else {
        return Err(UnitError::rate(text, "expected a number", count_span));
    };
    let per = unit_nanos(unit, false).ok_or_else(|| {
        UnitError::rate(
            text,
            format!("unknown unit {unit:?}; use s, m or h"),
            unit_span,
        )
    })?;
    if value.mantissa == 0 {
        return Err(UnitError::rate(
            text,
            "the rate must be greater than zero",
            count_span,
        ));
    }
    // interval = per / (mantissa / 10^scale) = per * 10^scale / mantissa
    let too_low = || UnitError::rate(text, "the rate is too low", count_span.clone());
    let nanos = per
        .checked_mul(10u128.pow(value.scale))
        .ok_or_else(too_low)?
        / value.mantissa;
    if nanos == 0 {
        return Err(UnitError::rate(text, "the rate is too high", count_span));
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_low())?;
    Ok(Rate {
        interval: Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("1.5s").unwrap(), ms(1500));
        assert_eq!(parse_duration("300ms").unwrap(), ms(300));
        assert_eq!(parse_duration("2m").unwrap(), ms(120_000));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        assert_eq!(parse_duration("10").unwrap(), ms(10_000));
        assert_eq!(parse_duration(" 0.1s ").unwrap(), ms(100));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration(".5").unwrap(), ms(500));
        assert_eq!(
            parse_duration("0.0000000015s").unwrap(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn duration_errors() {
        let cases = [
            ("", "the value is empty", 0..1),
            ("-1s", "a duration cannot be negative", 0..1),
            ("s", "expected a number", 0..1),
            ("1.2.3s", "expected a number", 0..5),
            (".", "expected a number", 0..1),
            ("5 s", "unknown unit \" s\"; use ms, s, m or h", 1..3),
            ("5sec", "unknown unit \"sec\"; use ms, s, m or h", 1..4),
            ("1d", "unknown unit \"d\"; use ms, s, m or h", 1..2),
            (
                "99999999999999999999999h",
                "the duration is too large",
                0..24,
            ),
        ];
        for (text, reason, span) in cases {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(e.reason, reason, "{text:?}");
            assert_eq!(e.span(), span, "{text:?}");
        }
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            "invalid duration \"5x\": unknown unit \"x\"; use ms, s, m or h"
        );
    }

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("5/s").unwrap().interval(),
            Duration::from_millis(200)
        );
        assert_eq!(
            parse_rate("100/m").unwrap().interval(),
            Duration::from_millis(600)
        );
        assert_eq!(
            parse_rate("0.5/s").unwrap().interval(),
            Duration::from_secs(2)
        );
        assert_eq!(
            parse_rate("30/h").unwrap().interval(),
            Duration::from_secs(120)
        );
        assert!((parse_rate("4/s").unwrap().per_second() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn rate_errors() {
        let cases = [
            ("", "the value is empty", 0..1),
            ("5", "expected COUNT/UNIT", 0..1),
            ("x/s", "expected a number", 0..1),
            ("5/sec", "unknown unit \"sec\"; use s, m or h", 2..5),
            ("5/ms", "unknown unit \"ms\"; use s, m or h", 2..4),
            ("5/", "unknown unit \"\"; use s, m or h", 2..3),
            ("0/s", "the rate must be greater than zero", 0..1),
            ("0.000/s", "the rate must be greater than zero", 0..5),
            ("9999999999999999/s", "the rate is too high", 0..16),
            (
                "0.00000000000000000000000001/h",
                "the rate is too low",
                0..28,
            ),
        ];
        for (text, reason, span) in cases {
            let e = parse_rate(text).unwrap_err();
            assert_eq!(e.reason, reason, "{text:?}");
            assert_eq!(e.span(), span, "{text:?}");
        }
        assert_eq!(
            parse_rate("5/x").unwrap_err().to_string(),
            "invalid rate \"5/x\": unknown unit \"x\"; use s, m or h"
        );
    }
}
