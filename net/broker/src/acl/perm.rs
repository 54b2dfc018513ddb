//! RocketMQ's permission bits (`Permission`) and how an owned permission satisfies a
//! needed one.

/// Nothing, even when another bit is set.
pub const DENY: u8 = 1;
/// Satisfied by PUB or SUB.
pub const ANY: u8 = 2;
pub const PUB: u8 = 4;
pub const SUB: u8 = 8;

/// `DENY`, `PUB`, `SUB`, `PUB|SUB` / `SUB|PUB`; anything else is DENY, as in RocketMQ.
pub fn parse(text: &str) -> u8 {
    match text.trim() {
        "PUB" => PUB,
        "SUB" => SUB,
        "PUB|SUB" | "SUB|PUB" => PUB | SUB,
        _ => DENY,
    }
}

/// `Permission.checkPermission`: whether `owned` grants `needed`.
pub fn grants(owned: u8, needed: u8) -> bool {
    if owned & DENY != 0 {
        return false;
    }
    if needed & ANY != 0 {
        return owned & (PUB | SUB) != 0;
    }
    needed & owned != 0
}

/// A name for logs and remarks.
pub fn name(perm: u8) -> &'static str {
    match perm {
        PUB => "PUB",
        SUB => "SUB",
        ANY => "ANY",
        p if p == PUB | SUB => "PUB|SUB",
        _ => "DENY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_rules() {
        assert_eq!(parse("PUB|SUB"), PUB | SUB);
        assert_eq!(parse(" SUB|PUB "), PUB | SUB);
        assert_eq!(parse("ANY"), DENY);
        assert_eq!(parse("junk"), DENY);
        assert!(grants(PUB | SUB, SUB));
        assert!(grants(PUB, PUB));
        assert!(!grants(PUB, SUB));
        assert!(!grants(DENY | PUB, PUB));
        assert!(grants(SUB, ANY));
        assert!(!grants(DENY, ANY));
    }
}
