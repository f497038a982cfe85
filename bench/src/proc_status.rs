//! What `/proc/self/status` says of this process (Linux); nothing where there is no `/proc`.

/// This process's resident set in bytes, or 0 if `/proc` does not say.
pub fn self_rss() -> u64 {
    status_field("VmRSS:").unwrap_or(0)
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`...), in bytes.
pub fn status_field(name: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| kib_field(&s, name))
}

/// The value of a `Name:   123 kB` line, in bytes.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The memory this process may still take, in bytes: the kernel's `MemAvailable` in
/// `/proc/meminfo`, lowered to what the process's cgroup (v2) has left under its
/// `memory.max` and to what its address-space limit (`RLIMIT_AS`, `ulimit -v`) leaves it
/// ([`address_space_room`]); `None` if `/proc` does not say.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = kib_field(&meminfo, "MemAvailable:")?;
    Some(
        [cgroup_room(), address_space_room()]
            .into_iter()
            .flatten()
            .fold(available, u64::min),
    )
}

/// What this process's address-space limit (`RLIMIT_AS`, which `ulimit -v` sets) leaves it:
/// the soft limit in `/proc/self/limits` less its virtual size now (`VmSize`); `None` if
/// it has no limit or `/proc` does not say. An allocation past the limit fails, and the
/// standard library ends the process on a failed allocation, so a run that needs more must
/// be refused before it starts.
pub fn address_space_room() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let limit = soft_limit(&limits, "Max address space")?;
    let size = status_field("VmSize:")?;
    Some(limit.saturating_sub(size))
}

/// The soft limit of the line `name` of a `/proc/<pid>/limits` text (`Max address space
/// 3072000000 3072000000 bytes`); `None` if it is `unlimited` or missing.
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// `memory.max` less `memory.current` of this process's cgroup (v2), if it has a limit.
fn cgroup_room() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // The v2 line is `0::/path`.
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    // "max" (no limit) does not parse.
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}
