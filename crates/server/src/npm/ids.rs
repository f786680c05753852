//! The random ids npm shows and sends back (`npm trust list`, `npm stage list`): UUIDs.

/// A random UUID (version 4), lower-case.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random generator");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = data_encoding::HEXLOWER.encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether `s` is a UUID as npm validates one (8-4-4-4-12 hex digits, either case).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_uuids_and_differ() {
        let a = new_uuid();
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_uuid());
        for bad in [
            "",
            "x",
            "0000000-0000-0000-0000-000000000000",
            "00000000-0000-0000-0000-00000000000g",
            "00000000-0000-0000-0000-000000000000-",
            "00000000000000000000000000000000",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
        assert!(is_uuid("ABCDEF01-2345-6789-abcd-ef0123456789"));
    }
}
