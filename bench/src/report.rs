//! What a bench run found, as tables for people, JSON for machines and an SVG chart.
//!
//! ```
//! use cowheap_bench::{self as bench, ApproachKind, BaseSource, Config, WorkloadConfig};
//!
//! let config = Config {
//!     base: BaseSource::Synthetic { objects: 3_000, seed: 1 },
//!     workload: WorkloadConfig { tenants: 10, ops: 50, ..WorkloadConfig::default() },
//!     write_counts: vec![0, 10, 100],
//!     approaches: vec![ApproachKind::Cowheap, ApproachKind::Rpds],
//!     ..Config::default()
//! };
//! let report = bench::run(&config, &()).unwrap();
//! let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
//! assert_eq!(json["approaches"][0]["approach"], "cowheap");
//! assert!(report.svg().unwrap().starts_with("<svg"));
//! ```

use super::approach::SweepPoint;
use super::{ApproachKind, Config, Error, Result};
use cowheap::heap::file::write_atomically;
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The base a run used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaseInfo {
    /// Where it came from.
    pub source: String,
    /// Objects in it.
    pub objects: usize,
    /// Bytes it occupies.
    pub bytes: u64,
    /// Milliseconds to build it.
    pub build_ms: f64,
    /// Objects the workload may touch.
    pub candidates: usize,
}

/// What one comparator cost. Per-tenant figures are means over the tenants measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApproachReport {
    /// Which comparator.
    pub approach: ApproachKind,
    /// Its name in tables.
    pub label: String,
    /// True if each tenant sees only its own writes.
    pub isolated: bool,
    /// Tenants forked and held at once (0 for the plain heap, which has none).
    pub held: usize,
    /// Tenants that ran the workload.
    pub worked: usize,
    /// What the reader should know about how it was measured.
    pub note: Option<String>,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Milliseconds to build its shared part.
    pub setup_ms: f64,
    /// Bytes of its shared part.
    pub shared_bytes: u64,
    /// Nanoseconds to create one tenant.
    pub create_ns: Option<f64>,
    /// Bytes an idle tenant holds.
    pub idle_bytes: Option<f64>,
    /// Bytes a working tenant holds after its writes.
    pub private_bytes: Option<f64>,
    /// Bytes all its tenants held at once (counted), after the writes.
    pub held_bytes: u64,
    /// Growth of the process's resident set while forking the tenants.
    pub rss_growth: u64,
    /// Reads in each read pass, over all working tenants.
    pub reads: u64,
    /// Writes, over all working tenants.
    pub writes: u64,
    /// Reads per second per thread, in millions, on objects no tenant had written.
    pub read_mops: Option<f64>,
    /// Writes per second per thread, in millions (first writes copy).
    pub write_mops: Option<f64>,
    /// The same reads after every working tenant wrote, in millions per second per thread.
    pub read_after_mops: Option<f64>,
    /// For cowheap: the read pass made straight on the base heap, with no tenant, in
    /// millions per second per thread; it separates the tenant's cost from the base's.
    pub base_read_mops: Option<f64>,
    /// Checksums of the first tenants' reads after their writes, for [`Fidelity`].
    pub checksums: Vec<u64>,
    /// Private bytes per tenant against writes per tenant.
    pub sweep: Vec<SweepPoint>,
}

impl ApproachReport {
    /// A comparator that did not run, and why.
    pub fn skipped(approach: ApproachKind, reason: String) -> ApproachReport {
        ApproachReport {
            approach,
            label: approach.label().to_owned(),
            isolated: approach.isolates(),
            held: 0,
            worked: 0,
            note: None,
            skipped: Some(reason),
            setup_ms: 0.0,
            shared_bytes: 0,
            create_ns: None,
            idle_bytes: None,
            private_bytes: None,
            held_bytes: 0,
            rss_growth: 0,
            reads: 0,
            writes: 0,
            read_mops: None,
            write_mops: None,
            read_after_mops: None,
            base_read_mops: None,
            checksums: Vec::new(),
            sweep: Vec::new(),
        }
    }
}

/// Whether the comparators that isolate tenants showed the first tenants the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fidelity {
    /// The comparators compared.
    pub compared: Vec<ApproachKind>,
    /// Tenants compared (the first ones, which every compared comparator ran).
    pub tenants: usize,
    /// True if every compared comparator read the same values for every compared tenant.
    pub agree: bool,
}

impl Fidelity {
    /// Compares the read checksums of every isolating comparator that ran.
    pub fn of(approaches: &[ApproachReport]) -> Fidelity {
        let ran: Vec<&ApproachReport> = approaches
            .iter()
            .filter(|a| a.isolated && a.skipped.is_none() && !a.checksums.is_empty())
            .collect();
        let tenants = ran.iter().map(|a| a.checksums.len()).min().unwrap_or(0);
        let agree = ran
            .windows(2)
            .all(|w| w[0].checksums[..tenants] == w[1].checksums[..tenants]);
        Fidelity {
            compared: ran.iter().map(|a| a.approach).collect(),
            tenants,
            agree,
        }
    }
}

/// Everything a run found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The configuration run.
    pub config: Config,
    /// The base.
    pub base: BaseInfo,
    /// Tenants that ran the workload.
    pub active: usize,
    /// The sweep's write counts, after lowering to the candidates.
    pub write_counts: Vec<usize>,
    /// One report per comparator, in the order of [`Config::approaches`](crate::Config).
    pub approaches: Vec<ApproachReport>,
    /// The cross-check of what tenants read.
    pub fidelity: Fidelity,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
    /// Peak resident memory of the process (`VmHWM`), in bytes; 0 where `/proc` does not say.
    pub peak_rss: u64,
}

/// `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `512 B`, `1.5 KiB`, `83.2 MiB`, `1.02 GiB`.
pub fn bytes(b: f64) -> String {
    const K: f64 = 1024.0;
    if b < K {
        format!("{b:.0} B")
    } else if b < K * K {
        format!("{:.1} KiB", b / K)
    } else if b < K * K * K {
        format!("{:.1} MiB", b / (K * K))
    } else {
        format!("{:.2} GiB", b / (K * K * K))
    }
}

/// `100 B`, `10 kB`, `1 MB`: decimal units, for a log axis's ticks at powers of ten.
fn decimal_bytes(b: f64) -> String {
    let (v, unit) = if b >= 1e9 {
        (b / 1e9, "GB")
    } else if b >= 1e6 {
        (b / 1e6, "MB")
    } else if b >= 1e3 {
        (b / 1e3, "kB")
    } else {
        (b, "B")
    };
    format!("{v:.0} {unit}")
}

/// `85 ns`, `1.2 µs`, `28.1 ms`, `1.50 s`.
fn duration(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// `x / of` as `0.95x`, `33x`, `5,570x`; `-` when either is missing or `of` is zero.
fn ratio(x: Option<f64>, of: Option<f64>) -> String {
    match (x, of) {
        (Some(x), Some(of)) if of > 0.0 && x >= 0.0 => {
            let r = x / of;
            if r < 10.0 {
                format!("{r:.2}x")
            } else {
                format!("{}x", count(r.round() as u64))
            }
        }
        _ => "-".to_owned(),
    }
}

fn or_dash(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".to_owned(), f)
}

impl Report {
    /// The report of `approach`, if it ran.
    pub fn get(&self, approach: ApproachKind) -> Option<&ApproachReport> {
        self.approaches
            .iter()
            .find(|a| a.approach == approach && a.skipped.is_none())
    }

    /// The tables a person reads: cost per tenant, throughput, the memory sweep, and notes.
    pub fn table(&self) -> String {
        let mut s = String::new();
        self.write_heading(&mut s);
        for section in [
            Report::write_costs,
            Report::write_throughput,
            Report::write_sweep,
            Report::write_notes,
        ] {
            let _ = writeln!(s);
            section(self, &mut s);
        }
        s
    }

    /// The base and the workload.
    fn write_heading(&self, s: &mut String) {
        let w = &self.config.workload;
        let _ = writeln!(
            s,
            "base: {} objects, {} ({}), built in {:.0} ms",
            count(self.base.objects as u64),
            bytes(self.base.bytes as f64),
            self.base.source,
            self.base.build_ms
        );
        let _ = writeln!(
            s,
            "workload: {} tenants, {} working on {} threads; {} ops each, {:.0}% writes, {} \
             over {} objects ({} mix); seed {}",
            count(w.tenants as u64),
            count(self.active as u64),
            w.threads,
            count(w.ops as u64),
            w.write_share * 100.0,
            w.skew,
            count(self.base.candidates as u64),
            w.size_mix,
            w.seed
        );
    }

    /// The cost per tenant: creation, idle and private bytes.
    fn write_costs(&self, s: &mut String) {
        let cow = self.get(ApproachKind::Cowheap);
        let _ = writeln!(s, "cost per tenant");
        let _ = writeln!(
            s,
            "{:<11} {:>21} {:>10} {:>10} {:>10} {:>11} {:>10}",
            "approach",
            "tenants held/working",
            "create",
            "x cowheap",
            "idle",
            "private",
            "x cowheap"
        );
        for a in &self.approaches {
            if a.skipped.is_some() {
                let _ = writeln!(s, "{:<11} skipped (see notes)", a.label);
                continue;
            }
            let held = if a.held == 0 {
                "shared".to_owned()
            } else {
                count(a.held as u64)
            };
            let _ = writeln!(
                s,
                "{:<11} {:>21} {:>10} {:>10} {:>10} {:>11} {:>10}",
                a.label,
                format!("{held} / {}", count(a.worked as u64)),
                or_dash(a.create_ns, duration),
                ratio(a.create_ns, cow.and_then(|c| c.create_ns)),
                or_dash(a.idle_bytes, bytes),
                or_dash(a.private_bytes, bytes),
                ratio(a.private_bytes, cow.and_then(|c| c.private_bytes)),
            );
        }
        let _ = writeln!(
            s,
            "idle: what a tenant holds when forked; private: after its writes (a mean of {} \
             writes per working tenant)",
            cow.or(self.approaches.first())
                .map_or("0".to_owned(), |a| format!(
                    "{:.0}",
                    a.writes as f64 / a.worked.max(1) as f64
                ))
        );
    }

    /// Reads, writes and reads after writes, per thread.
    fn write_throughput(&self, s: &mut String) {
        let cow = self.get(ApproachKind::Cowheap);
        let _ = writeln!(s, "throughput, million operations per second per thread");
        let _ = writeln!(
            s,
            "{:<11} {:>8} {:>10} {:>8} {:>10} {:>13} {:>10}",
            "approach", "read", "x cowheap", "write", "x cowheap", "read after", "x cowheap"
        );
        for a in self.approaches.iter().filter(|a| a.skipped.is_none()) {
            let f = |x: Option<f64>| or_dash(x, |v| format!("{v:.1}"));
            let _ = writeln!(
                s,
                "{:<11} {:>8} {:>10} {:>8} {:>10} {:>13} {:>10}",
                a.label,
                f(a.read_mops),
                ratio(a.read_mops, cow.and_then(|c| c.read_mops)),
                f(a.write_mops),
                ratio(a.write_mops, cow.and_then(|c| c.write_mops)),
                f(a.read_after_mops),
                ratio(a.read_after_mops, cow.and_then(|c| c.read_after_mops)),
            );
        }
        let _ = writeln!(
            s,
            "read: objects no tenant has written; write: each tenant's writes (a first write \
             copies); read after: the same reads once every working tenant has written"
        );
        for a in self.approaches.iter().filter(|a| a.skipped.is_none()) {
            let _ = writeln!(
                s,
                "  {}: {} reads (and as many after) and {} writes",
                a.label,
                count(a.reads),
                count(a.writes),
            );
        }
    }

    /// Private bytes per tenant against writes per tenant.
    fn write_sweep(&self, s: &mut String) {
        let _ = writeln!(s, "private bytes per tenant, by writes per tenant");
        let _ = write!(s, "{:<11}", "writes");
        for &c in &self.write_counts {
            let _ = write!(s, " {:>10}", count(c as u64));
        }
        let _ = writeln!(s);
        for a in self.approaches.iter().filter(|a| a.skipped.is_none()) {
            let _ = write!(s, "{:<11}", a.label);
            for p in &a.sweep {
                let _ = write!(s, " {:>10}", bytes(p.bytes));
            }
            let _ = writeln!(s);
        }
    }

    /// What was sampled or skipped, what the tenants held, fidelity.
    fn write_notes(&self, s: &mut String) {
        let cow = self.get(ApproachKind::Cowheap);
        let _ = writeln!(s, "notes");
        for a in &self.approaches {
            if let Some(why) = &a.skipped {
                let _ = writeln!(s, "- {}: skipped: {why}", a.label);
            } else if let Some(note) = &a.note {
                let _ = writeln!(s, "- {}: {note}", a.label);
            }
        }
        if let Some(c) = cow {
            let _ = writeln!(
                s,
                "- cowheap: {} tenants held {} in all after the writes ({} per idle tenant); \
                 resident memory grew {} while forking them",
                count(c.held as u64),
                bytes(c.held_bytes as f64),
                or_dash(c.idle_bytes, bytes),
                bytes(c.rss_growth as f64)
            );
            if let Some(b) = c.base_read_mops {
                let _ = writeln!(
                    s,
                    "- cowheap: the same reads straight from the base heap, with no tenant: \
                     {b:.1} M/s per thread (cowheap's reads are {} of that)",
                    ratio(c.read_mops, Some(b)),
                );
            }
        }
        let f = &self.fidelity;
        let names: Vec<&str> = f.compared.iter().map(|k| k.label()).collect();
        // One comparator agrees with itself: with fewer than two nothing was compared, and
        // no agreement is claimed.
        let _ = match names.as_slice() {
            [] => writeln!(
                s,
                "- fidelity: not checked: no comparator that isolates tenants ran"
            ),
            [one] => writeln!(
                s,
                "- fidelity: not checked: {one} is the only comparator that ran that isolates \
                 tenants"
            ),
            _ => writeln!(
                s,
                "- fidelity: {} read {} in the first {} tenants after their writes",
                names.join(", "),
                if f.agree {
                    "the same values"
                } else {
                    "DIFFERENT VALUES"
                },
                f.tenants
            ),
        };
        if self.peak_rss > 0 {
            let _ = writeln!(
                s,
                "- peak resident memory of this process, every comparator included: {}",
                bytes(self.peak_rss as f64)
            );
        }
        let _ = writeln!(s, "- whole run: {:.1} s", self.elapsed_s);
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes [`Report::to_json`] to `path`, atomically: on any error `path` is as it was.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_whole(
            path,
            "writing the JSON report",
            (self.to_json()? + "\n").as_bytes(),
        )
    }

    /// An SVG chart: private bytes per tenant against writes per tenant, both on log scales,
    /// one line per comparator that holds private bytes (0 writes is drawn at 1).
    pub fn svg(&self) -> Result<String> {
        let series: Vec<(&str, Vec<(f64, f64)>)> = self
            .approaches
            .iter()
            .filter(|a| a.skipped.is_none())
            .map(|a| {
                let points = a
                    .sweep
                    .iter()
                    .filter(|p| p.bytes >= 1.0)
                    .map(|p| ((p.writes.max(1)) as f64, p.bytes))
                    .collect();
                (a.label.as_str(), points)
            })
            .filter(|(_, p): &(&str, Vec<(f64, f64)>)| !p.is_empty())
            .collect();
        let all = series.iter().flat_map(|(_, p)| p.iter());
        let x_max = all.clone().map(|p| p.0).fold(10.0, f64::max) * 2.0;
        let y_min = all.clone().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_min = if y_min.is_finite() { y_min / 2.0 } else { 1.0 };
        let y_max = all.map(|p| p.1).fold(y_min * 10.0, f64::max) * 2.0;
        let plot = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (900, 560)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "private bytes per tenant against writes per tenant",
                    ("sans-serif", 22),
                )
                .margin(20)
                .x_label_area_size(45)
                .y_label_area_size(85)
                .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())
                .map_err(|e| plot(&e))?;
            chart
                .configure_mesh()
                .x_desc("writes per tenant (0 drawn at 1)")
                .y_desc("private bytes per tenant (the plain heap's 0 is not drawn)")
                .x_label_formatter(&|x| count(x.round() as u64))
                .y_label_formatter(&|y| decimal_bytes(*y))
                .draw()
                .map_err(|e| plot(&e))?;
            for (i, (label, points)) in series.into_iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| plot(&e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(|e| plot(&e))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(|e| plot(&e))?;
            root.present().map_err(|e| plot(&e))?;
        }
        Ok(out)
    }

    /// Writes [`Report::svg`] to `path`, atomically: on any error `path` is as it was.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        write_whole(path, "writing the SVG chart", self.svg()?.as_bytes())
    }
}

/// Writes `bytes` to `path` through [`write_atomically`]: a temporary file renamed over
/// `path` once whole, so that a failure (a full disk, a file size limit) leaves the old
/// file as it was.
fn write_whole(path: &Path, what: &'static str, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |w| w.write_all(bytes)).map_err(|source| Error::Write { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(duration(1_500.0), "1.5 µs");
        assert_eq!(ratio(Some(50.0), Some(2.0)), "25x");
        assert_eq!(ratio(Some(1.0), Some(2.0)), "0.50x");
        assert_eq!(ratio(Some(1.0), None), "-");
    }
}
