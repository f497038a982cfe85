//! How many CPUs this process and the rest of the machine used over an interval, from
//! `/proc/self/stat` and `/proc/stat` (Linux): on a shared machine, whether a measurement had
//! the CPUs it assumed.

/// Clock ticks of CPU time: this process's (all its threads and the children it reaped), the whole machine's busy time
/// and its total (busy and idle, over every CPU).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    own: u64,
    busy: u64,
    total: u64,
    cores: usize,
}

/// CPUs in use on average over an interval.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cpus {
    /// This process.
    pub(crate) own: f64,
    /// Every other process of the machine.
    pub(crate) others: f64,
    /// The machine's CPUs.
    pub(crate) cores: usize,
}

impl Ticks {
    /// The counters now, from `/proc/self/stat` and `/proc/stat`; `None` without `/proc`.
    pub(crate) fn now() -> Option<Ticks> {
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3, `state`;
        // `utime`, `stime`, `cutime` and `cstime` are fields 14 to 17 (the last two: children
        // waited for, such as the fork comparator's).
        let fields: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = (11..15)
            .map(|i| fields.get(i)?.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let cores = stat
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(Ticks {
            own,
            busy,
            total: busy + at(3) + at(4),
            cores,
        })
    }

    /// What was used between `earlier` and `self`, in CPUs (unit-free: ticks over all the
    /// ticks the machine had, times its CPUs).
    pub(crate) fn since(&self, earlier: &Ticks) -> Cpus {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let own = self.own.saturating_sub(earlier.own) as f64;
        let busy = self.busy.saturating_sub(earlier.busy) as f64;
        let cores = self.cores.max(1) as f64;
        Cpus {
            own: own / total * cores,
            others: (busy - own).max(0.0) / total * cores,
            cores: self.cores,
        }
    }
}
