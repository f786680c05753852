//! What the machine gives the process: memory, read from `/proc` and the cgroup, to size the
//! defaults that depend on it.

/// Memory the process may use: the smaller of the machine's memory and the lowest cgroup limit
/// over it (v2 `memory.max` of its own cgroup and each one above, as a systemd `MemoryMax=` or a
/// container sets; or v1 `memory.limit_in_bytes`), or `None` where none can be read.
pub fn memory_bytes() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let total = read("/proc/meminfo").and_then(|s| mem_total(&s));
    let own = read("/proc/self/cgroup");
    let v2 = own
        .as_deref()
        .and_then(cgroup_v2_path)
        .map(|path| {
            cgroup_and_ancestors(path)
                .filter_map(|dir| read(&format!("/sys/fs/cgroup{dir}/memory.max")))
                .filter_map(|s| cgroup_limit(&s))
                .min()
        })
        .unwrap_or(None);
    let limit = v2.or_else(|| {
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(|s| cgroup_limit(&s))
    });
    match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    }
}

/// The process's cgroup v2 path from `/proc/self/cgroup` (its `0::/path` line).
fn cgroup_v2_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with('/'))
}

/// `path` and each cgroup above it, as folder suffixes of `/sys/fs/cgroup` ("" is the root).
fn cgroup_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let path = path.trim_end_matches('/');
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// A cgroup memory limit in bytes; `None` for "max" (v2) or v1's "no limit" (a value near
/// `i64::MAX`).
fn cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

/// The default packument cache for a machine with `memory` bytes: a sixteenth of it, between
/// 32 and 256 MiB (64 MiB when the memory is unknown).
pub fn packument_cache_default(memory: Option<u64>) -> usize {
    const MIB: u64 = 1 << 20;
    let bytes = memory.map_or(64 * MIB, |m| (m / 16).clamp(32 * MIB, 256 * MIB));
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn reads_mem_total_in_bytes() {
        let s = "MemTotal:       24684000 kB\nMemFree:        19000000 kB\n";
        assert_eq!(mem_total(s), Some(24_684_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn an_unlimited_cgroup_is_no_limit() {
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(cgroup_limit("536870912\n"), Some(512 * MIB));
        assert_eq!(cgroup_limit(""), None);
    }

    #[test]
    fn a_cgroup_and_the_ones_above_it_are_all_read() {
        let own = "12:memory:/old\n0::/system.slice/tessera.service\n";
        let path = cgroup_v2_path(own).unwrap();
        assert_eq!(path, "/system.slice/tessera.service");
        let dirs: Vec<&str> = cgroup_and_ancestors(path).collect();
        assert_eq!(dirs, ["/system.slice/tessera.service", "/system.slice", ""]);
        assert_eq!(cgroup_and_ancestors("/").collect::<Vec<_>>(), [""]);
        assert_eq!(cgroup_v2_path("12:memory:/docker/abc\n"), None);
    }

    #[test]
    fn the_cache_is_a_sixteenth_of_memory_within_bounds() {
        let mib = |n: u64| usize::try_from(n * MIB).unwrap();
        assert_eq!(packument_cache_default(Some(256 * MIB)), mib(32));
        assert_eq!(packument_cache_default(Some(1024 * MIB)), mib(64));
        assert_eq!(packument_cache_default(Some(2048 * MIB)), mib(128));
        assert_eq!(packument_cache_default(Some(24 * 1024 * MIB)), mib(256));
        assert_eq!(packument_cache_default(None), mib(64));
    }

    #[test]
    fn this_machine_reports_its_memory() {
        if cfg!(target_os = "linux") {
            assert!(memory_bytes().is_some_and(|m| m > 16 * MIB));
        }
    }
}
