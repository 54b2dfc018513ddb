//! mqadmin's output conventions: Java `%-Ns` columns (left-aligned, padded, never cut) and
//! `UtilAll.timeMillisToHumanString2` times (`yyyy-MM-dd HH:mm:ss,SSS`, here in UTC).

/// One row of left-aligned columns: `widths[i]` pads column i (the last is not padded),
/// `seps[i]` follows it (mqadmin mixes one and two spaces).
pub fn row(cells: &[String], widths: &[usize], sep: &str) -> String {
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            out.push_str(c);
        } else {
            let w = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{c:<w$}{sep}"));
        }
    }
    out.push('\n');
    out
}

/// A row from `&str`s.
pub fn row_str(cells: &[&str], widths: &[usize], sep: &str) -> String {
    row(
        &cells.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        widths,
        sep,
    )
}

/// `yyyy-MM-dd HH:mm:ss,SSS` (UTC) of a millisecond timestamp.
pub fn human_time(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02},{milli:03}")
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// mqadmin's `-s` time: `now`, milliseconds, or `yyyy-MM-dd#HH:mm:ss:SSS` (UTC here).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("bad time {s:?}: expected now, milliseconds or yyyy-MM-dd#HH:mm:ss:SSS");
    let (date, time) = s.split_once('#').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let t: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if d.len() != 3 || t.len() != 4 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return Err(bad());
    }
    let days = days_from_civil(d[0], d[1] as u32, d[2] as u32);
    Ok(days * 86_400_000 + t[0] * 3_600_000 + t[1] * 60_000 + t[2] * 1000 + t[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_format_times_and_rows() {
        assert_eq!(human_time(0), "1970-01-01 00:00:00,000");
        assert_eq!(human_time(1_700_000_000_123), "2023-11-14 22:13:20,123");
        assert_eq!(
            parse_time("2023-11-14#22:13:20:123", 0).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_time("now", 42).unwrap(), 42);
        assert_eq!(parse_time("17", 42).unwrap(), 17);
        assert!(parse_time("yesterday", 0).is_err());
        assert_eq!(row_str(&["a", "bb", "c"], &[3, 4], "  "), "a    bb    c\n");
    }
}
