//! Go duration strings (`time.ParseDuration`), as the CertificatesSpec and its CEL
//! rules (`duration(...)`) take them: a sequence of decimal numbers with units
//! `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, such as `8760h`, `90s` or `1h30m`.

use std::time::Duration;

/// Parses `value`; `field` names the spec field in the error. Negative durations and
/// those beyond ~292 years are refused (a certificate lives between now and then).
pub fn parse_duration(field: &'static str, value: &str) -> super::Result<Duration> {
    let err = |what: &str| super::PkiError::Duration {
        field,
        value: value.to_string(),
        what: what.to_string(),
    };
    let s = value.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number without unit"))?;
        let (number, tail) = rest.split_at(digits);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err("expected a number"));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(err("unknown unit (ns, us, ms, s, m, h)")),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.len() > 20 || frac.len() > 20 {
            return Err(err("too many digits"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err("expected a number"))?
        };
        let mut part = int.checked_mul(unit_ns).ok_or_else(|| err("too long"))?;
        if !frac.is_empty() {
            let scale = 10u128.pow(frac.len() as u32);
            let frac: u128 = frac.parse().map_err(|_| err("expected a number"))?;
            part += frac * unit_ns / scale;
        }
        total_ns = total_ns.checked_add(part).ok_or_else(|| err("too long"))?;
        if total_ns > i64::MAX as u128 {
            return Err(err("too long"));
        }
        rest = next;
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_duration("validity", s).unwrap();
        assert_eq!(d("8760h"), Duration::from_secs(8760 * 3600));
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "h", "10", "-5s", "5d", "1..5s", "5 s", "99999999999999999999999h"] {
            assert!(parse_duration("validity", bad).is_err(), "{bad:?}");
        }
        let e = parse_duration("renewBefore", "5d").unwrap_err().to_string();
        assert!(e.contains("renewBefore") && e.contains("5d"), "{e}");
    }
}
