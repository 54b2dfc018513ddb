//! `whiteRemoteAddress` and `globalWhiteRemoteAddresses` patterns, as RocketMQ's
//! `RemoteAddressStrategyFactory` reads them: `*` (or `*.*.*.*`) for everyone, an exact
//! address, and IPv4 patterns whose segments are a number, `*`, a range `1-100` or a
//! list `{1,2,3}` (as the last segment), e.g. `192.168.1.*`, `192.168.*.*`,
//! `192.168.1.1-100`, `192.168.1.{1,2}`. A blank pattern matches nobody.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrPattern {
    Nobody,
    Everyone,
    Exact(IpAddr),
    /// Four IPv4 segments, each a set of allowed values.
    V4([Segment; 4]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Any,
    Range(u8, u8),
    List(Vec<u8>),
}

impl Segment {
    fn matches(&self, v: u8) -> bool {
        match self {
            Segment::Any => true,
            Segment::Range(lo, hi) => (*lo..=*hi).contains(&v),
            Segment::List(l) => l.contains(&v),
        }
    }

    fn parse(s: &str) -> Option<Segment> {
        if s == "*" {
            return Some(Segment::Any);
        }
        if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let list: Option<Vec<u8>> = inner.split(',').map(|v| v.trim().parse().ok()).collect();
            return list.filter(|l| !l.is_empty()).map(Segment::List);
        }
        if let Some((lo, hi)) = s.split_once('-') {
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            return (lo <= hi).then_some(Segment::Range(lo, hi));
        }
        let v = s.parse().ok()?;
        Some(Segment::Range(v, v))
    }
}

impl AddrPattern {
    /// Reads one pattern; `Err` says why it is not one.
    pub fn parse(text: &str) -> Result<AddrPattern, String> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(AddrPattern::Nobody);
        }
        if t == "*" || t == "*.*.*.*" {
            return Ok(AddrPattern::Everyone);
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(AddrPattern::Exact(ip.to_canonical()));
        }
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() == 4 {
            let segs: Option<Vec<Segment>> = parts.iter().map(|p| Segment::parse(p)).collect();
            if let Some(Ok(segs)) = segs.map(<[Segment; 4]>::try_from) {
                return Ok(AddrPattern::V4(segs));
            }
        }
        Err(format!("{t:?} is not an address pattern"))
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            AddrPattern::Nobody => false,
            AddrPattern::Everyone => true,
            AddrPattern::Exact(a) => *a == ip,
            AddrPattern::V4(segs) => match ip {
                IpAddr::V4(v4) => segs.iter().zip(v4.octets()).all(|(s, o)| s.matches(o)),
                IpAddr::V6(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, ip: &str) -> bool {
        AddrPattern::parse(p).unwrap().matches(ip.parse().unwrap())
    }

    #[test]
    fn patterns() {
        assert!(m("*", "10.1.2.3"));
        assert!(m("*.*.*.*", "::1"));
        assert!(m("192.168.1.7", "192.168.1.7"));
        assert!(m("192.168.1.7", "::ffff:192.168.1.7"));
        assert!(!m("192.168.1.7", "192.168.1.8"));
        assert!(m("192.168.1.*", "192.168.1.200"));
        assert!(!m("192.168.1.*", "192.168.2.200"));
        assert!(m("192.168.*.*", "192.168.2.200"));
        assert!(m("192.168.1.1-100", "192.168.1.100"));
        assert!(!m("192.168.1.1-100", "192.168.1.101"));
        assert!(m("192.168.1.{1,2}", "192.168.1.2"));
        assert!(!m("192.168.1.{1,2}", "192.168.1.3"));
        assert!(!m("", "127.0.0.1"));
        assert!(AddrPattern::parse("300.1.1.1").is_err());
        assert!(AddrPattern::parse("a.b").is_err());
    }
}
