//! The workload generator: which objects each tenant reads and writes.
//!
//! A [`Workload`] is made once per base from a [`WorkloadConfig`]. It picks the *candidates*
//! (base objects with pointer slots, filtered by the [`SizeMix`]), shuffles them with the
//! seed, and then hands out each tenant's operations on demand: tenant `t`'s operations are a
//! function of the seed and `t` alone (one ChaCha stream per tenant), so the same seed gives
//! the same work on every comparator, on every thread count, in every process. That is what
//! lets the fork probe, in another process, make exactly the writes the other comparators make.
//!
//! Each operation is a write with probability `write_share`, else a read. The object is drawn
//! from the candidates uniformly or by a Zipf law over a seeded ranking ([`Skew`]); the slot
//! uniformly among the object's pointer slots. A write stores a small integer.
//!
//! ```
//! use cowheap_bench::{Op, Workload, WorkloadConfig};
//!
//! let base = cowheap::synth::image(5_000, 1);
//! let config = WorkloadConfig { ops: 200, write_share: 0.25, ..WorkloadConfig::default() };
//! let workload = Workload::new(&base, config).unwrap();
//! let (mut a, mut b) = (Vec::new(), Vec::new());
//! workload.tenant_ops(7, &mut a);
//! workload.tenant_ops(7, &mut b);
//! assert_eq!(a, b); // same seed and tenant, same work
//! assert_eq!(a.len(), 200);
//! assert!(a.iter().any(|op| matches!(op, Op::Write { .. })));
//! ```

use super::{Error, Result};
use cowheap::heap::{BaseHeap, ObjectIndex, Word};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How accesses spread over the candidate objects.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Skew {
    /// Every candidate equally likely.
    Uniform,
    /// The candidate of rank `k` (1-based, in a seeded order) has probability proportional to
    /// `k^-exponent`.
    Zipf {
        /// The exponent `s`, above zero; 1 is the classic law.
        exponent: f64,
    },
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skew::Uniform => write!(f, "uniform"),
            Skew::Zipf { exponent } => write!(f, "zipf:{exponent}"),
        }
    }
}

impl FromStr for Skew {
    type Err = Error;

    /// `uniform`, `zipf` (exponent 0.99) or `zipf:S`.
    ///
    /// ```
    /// use cowheap_bench::Skew;
    /// assert_eq!("uniform".parse::<Skew>().unwrap(), Skew::Uniform);
    /// assert_eq!("zipf:1.2".parse::<Skew>().unwrap(), Skew::Zipf { exponent: 1.2 });
    /// assert!("zipf:-1".parse::<Skew>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Skew> {
        let bad = |reason: &str| Error::BadOption {
            option: "skew",
            reason: format!("{reason}: {s:?} (say `uniform`, `zipf` or `zipf:S`)"),
        };
        match s.split_once(':') {
            None if s == "uniform" => Ok(Skew::Uniform),
            None if s == "zipf" => Ok(Skew::Zipf { exponent: 0.99 }),
            Some(("zipf", e)) => match e.parse::<f64>() {
                Ok(exponent) if exponent > 0.0 && exponent.is_finite() => {
                    Ok(Skew::Zipf { exponent })
                }
                _ => Err(bad("the Zipf exponent must be a number above 0")),
            },
            _ => Err(bad("unknown skew")),
        }
    }
}

/// Which base objects the workload touches, by size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeMix {
    /// Every object with a pointer slot, in the proportions of the image.
    Image,
    /// Small objects only: 1 to 8 pointer slots.
    Small,
    /// Large objects only: 16 pointer slots or more.
    Large,
}

impl SizeMix {
    /// True if an object with `slots` pointer slots is a candidate.
    pub fn admits(self, slots: usize) -> bool {
        match self {
            SizeMix::Image => slots > 0,
            SizeMix::Small => (1..=8).contains(&slots),
            SizeMix::Large => slots >= 16,
        }
    }
}

impl fmt::Display for SizeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeMix::Image => "image",
            SizeMix::Small => "small",
            SizeMix::Large => "large",
        })
    }
}

impl FromStr for SizeMix {
    type Err = Error;

    /// `image`, `small` or `large`.
    fn from_str(s: &str) -> Result<SizeMix> {
        match s {
            "image" => Ok(SizeMix::Image),
            "small" => Ok(SizeMix::Small),
            "large" => Ok(SizeMix::Large),
            _ => Err(Error::BadOption {
                option: "size-mix",
                reason: format!("unknown size mix {s:?} (say `image`, `small` or `large`)"),
            }),
        }
    }
}

/// What the tenants do: how many, on how many threads, how many operations each, which.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// Tenants forked from the base.
    pub tenants: usize,
    /// Worker threads that run the tenants (each tenant on one thread at a time).
    pub threads: usize,
    /// Operations (reads and writes) each working tenant makes.
    pub ops: usize,
    /// Share of the operations that are writes, in `0..=1`.
    pub write_share: f64,
    /// How accesses spread over the objects.
    pub skew: Skew,
    /// Which objects are touched.
    pub size_mix: SizeMix,
    /// The seed of everything random in the workload.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    /// 1,000 tenants on 2 threads, 1,000 operations each of which 10% are writes, uniform
    /// over every object with a pointer slot, seed 1.
    fn default() -> Self {
        WorkloadConfig {
            tenants: 1_000,
            threads: 2,
            ops: 1_000,
            write_share: 0.1,
            skew: Skew::Uniform,
            size_mix: SizeMix::Image,
            seed: 1,
        }
    }
}

impl WorkloadConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |option, reason: &str| {
            Err(Error::BadOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.tenants == 0 {
            return bad("tenants", "at least one tenant is needed");
        }
        if self.threads == 0 {
            return bad("threads", "at least one thread is needed");
        }
        if self.threads > crate::MAX_THREADS {
            return bad("threads", "at most 1,024 threads");
        }
        if self.ops > crate::MAX_OPS {
            return bad("ops", "at most 10,000,000 operations per tenant");
        }
        if !(0.0..=1.0).contains(&self.write_share) {
            return bad("write-share", "the share of writes must lie in 0..=1");
        }
        if let Skew::Zipf { exponent } = self.skew
            && !(exponent > 0.0 && exponent.is_finite())
        {
            return bad("skew", "the Zipf exponent must be a number above 0");
        }
        Ok(())
    }
}

/// One operation of a tenant on a base object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read pointer slot `slot` of `object`.
    Read {
        /// The object read.
        object: ObjectIndex,
        /// The pointer slot read.
        slot: u32,
    },
    /// Store the small integer `value` into pointer slot `slot` of `object`.
    Write {
        /// The object written.
        object: ObjectIndex,
        /// The pointer slot written.
        slot: u32,
        /// The small integer stored.
        value: i64,
    },
}

impl Op {
    /// The object the operation touches.
    pub fn object(self) -> ObjectIndex {
        match self {
            Op::Read { object, .. } | Op::Write { object, .. } => object,
        }
    }

    /// True for a write.
    pub fn is_write(self) -> bool {
        matches!(self, Op::Write { .. })
    }
}

/// Seed salt of the writes-only streams ([`Workload::tenant_writes`]), so they differ from
/// the mixed streams of the same tenant.
const WRITES_SALT: u64 = 0x5752_4954_4553_4f4e;
/// Seed salt of the candidates' shuffle.
const SHUFFLE_SALT: u64 = 0x5348_5546_464c_4521;

/// The candidates and the sampler of one base and one [`WorkloadConfig`]; see the module doc.
///
/// `Workload` is `Send + Sync`: every thread asks it for its tenants' operations.
#[derive(Clone, Debug)]
pub struct Workload {
    config: WorkloadConfig,
    /// Candidate objects with their pointer slot counts, in the seeded order Zipf ranks use.
    candidates: Vec<(ObjectIndex, u32)>,
    zipf: Option<Zipf>,
}

impl Workload {
    /// The workload of `config` on `base`. Fails if the configuration is out of range or no
    /// object of the base fits the size mix. Time: O(objects in the base).
    pub fn new(base: &BaseHeap, config: WorkloadConfig) -> Result<Workload> {
        config.validate()?;
        let mut candidates = Vec::new();
        for x in base.indices() {
            let slots = base.size(x)?.slots;
            if config.size_mix.admits(slots) {
                let slots = u32::try_from(slots).map_err(|_| Error::BadOption {
                    option: "base",
                    reason: "an object with 2^32 slots or more".to_owned(),
                })?;
                candidates.push((x, slots));
            }
        }
        if candidates.is_empty() {
            return Err(Error::BadOption {
                option: "size-mix",
                reason: format!(
                    "no object of the base fits the size mix {}",
                    config.size_mix
                ),
            });
        }
        candidates.shuffle(&mut ChaCha8Rng::seed_from_u64(config.seed ^ SHUFFLE_SALT));
        let zipf = match config.skew {
            Skew::Uniform => None,
            Skew::Zipf { exponent } => Some(Zipf::new(candidates.len() as u64, exponent)),
        };
        Ok(Workload {
            config,
            candidates,
            zipf,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// Number of candidate objects.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// The candidate of Zipf rank `rank` (1-based): the most accessed object under a Zipf skew
    /// is `ranked(1)`. `None` past the last candidate.
    pub fn ranked(&self, rank: usize) -> Option<ObjectIndex> {
        rank.checked_sub(1)
            .and_then(|i| self.candidates.get(i))
            .map(|&(x, _)| x)
    }

    /// The random stream of tenant `tenant`, salted.
    fn rng(&self, tenant: u64, salt: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ salt);
        rng.set_stream(tenant);
        rng
    }

    /// An object and one of its slots, drawn by the skew.
    #[inline]
    fn pick(&self, rng: &mut ChaCha8Rng) -> (ObjectIndex, u32) {
        let i = match &self.zipf {
            None => rng.random_range(0..self.candidates.len()),
            Some(z) => (z.sample(rng) - 1) as usize,
        };
        let (x, slots) = self.candidates[i];
        (x, rng.random_range(0..slots))
    }

    /// The value tenant `tenant` stores in its `n`th write: a small integer that names both.
    fn value(tenant: u64, n: usize) -> i64 {
        (((tenant << 24) ^ n as u64) & ((1 << 60) - 1)) as i64
    }

    /// Replaces `out` with tenant `tenant`'s operations: `ops` of them, each a write with
    /// probability `write_share`. Time: O(ops).
    pub fn tenant_ops(&self, tenant: u64, out: &mut Vec<Op>) {
        out.clear();
        let mut rng = self.rng(tenant, 0);
        for n in 0..self.config.ops {
            let write = rng.random_bool(self.config.write_share);
            let (object, slot) = self.pick(&mut rng);
            out.push(if write {
                Op::Write {
                    object,
                    slot,
                    value: Self::value(tenant, n),
                }
            } else {
                Op::Read { object, slot }
            });
        }
    }

    /// Replaces `out` with `count` writes of tenant `tenant`, drawn like its other operations
    /// but from a separate stream: the memory sweep's work. Time: O(count).
    pub fn tenant_writes(&self, tenant: u64, count: usize, out: &mut Vec<Op>) {
        out.clear();
        let mut rng = self.rng(tenant, WRITES_SALT);
        out.extend((0..count).map(|n| {
            let (object, slot) = self.pick(&mut rng);
            Op::Write {
                object,
                slot,
                value: Self::value(tenant, n),
            }
        }));
    }
}

/// What a read contributes to a run's checksum: the integer it read, or 1 for any reference.
///
/// Every comparator reads the same slots in the same order, so their checksums agree when they
/// all show each tenant its own writes and the base elsewhere. References count as 1 because
/// a tenant may see its copy of an object where the others see the base object's index.
#[inline]
pub fn checksum_of(w: Word) -> u64 {
    w.as_int().map_or(1, |i| i as u64)
}

/// Zipf law over ranks `1..=n` with exponent `s`, sampled by rejection-inversion
/// (Hörmann and Derflinger, 1996): O(1) expected time and no table, whatever `n`.
///
/// The method inverts the integral `H` of the hat function `h(x) = x^-s` to turn a uniform
/// number into a continuous `x`, rounds it to the rank `k`, and accepts `k` when the area under
/// `h` that maps to it is not larger than `h(k)`; the constant `shortcut` accepts most draws
/// without evaluating `H` again.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    shortcut: f64,
}

impl Zipf {
    /// The law over `1..=n` (at least 1) with exponent `s` (above 0).
    ///
    /// ```
    /// use cowheap_bench::Zipf;
    /// use rand::SeedableRng;
    ///
    /// let z = Zipf::new(100, 1.0);
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    /// let ones = (0..10_000).filter(|_| z.sample(&mut rng) == 1).count();
    /// // P(1) = 1 / H(100) = 0.193
    /// assert!((1_700..2_200).contains(&ones), "{ones}");
    /// ```
    pub fn new(n: u64, s: f64) -> Zipf {
        let n = n.max(1) as f64;
        let mut z = Zipf {
            n,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            shortcut: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.shortcut = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        loop {
            let u =
                self.h_integral_n + rng.random::<f64>() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.shortcut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// The hat function `x^-s`.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// `H(x) = (x^(1-s) - 1) / (1 - s)`, or `ln x` when `s = 1`, computed stably near `s = 1`.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.s) * log_x) * log_x
    }

    /// The inverse of [`Zipf::h_integral`].
    fn h_integral_inverse(&self, y: f64) -> f64 {
        let t = (y * (1.0 - self.s)).max(-1.0);
        (ln1p_over_x(t) * y).exp()
    }
}

/// `ln(1 + x) / x`, tending to 1 at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, tending to 1 at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}
