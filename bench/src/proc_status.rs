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
