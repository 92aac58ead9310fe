//! The crash model of a disk with a volatile write cache, shared by the crash tests of
//! fs-core, the VHD layer and the driver's simulated disk.
//!
//! A flush is a barrier: every write issued before a completed flush is durable. The writes
//! issued since the last completed flush (an *epoch*) sit in the cache and reach the medium in
//! any order, so a power cut leaves any subset of them, and one more of them may be torn at a
//! sector boundary (a prefix of its sectors landed). Writes that do land are applied in issue
//! order, so a sector holds either its durable content or one of the versions written to it.
//!
//! Small epochs are enumerated exhaustively. Large ones are sampled: the states that break a
//! protocol most often (every prefix, as an in-order disk would leave, each single omission,
//! each single inclusion, a torn write after each prefix) plus seeded random subsets, so a run
//! is reproducible and its count can be reported.

use alloc::vec::Vec;

use crate::device::{CrashRecorder, MemDevice, RecordedOp};

/// How many crash states to check per epoch.
#[derive(Debug, Clone, Copy)]
pub struct CrashPlan {
    /// Epochs whose `2^writes` subsets number at most this are enumerated exhaustively.
    pub exhaustive_limit: u64,
    /// Seeded random subsets added to the structured ones of a larger epoch.
    pub random_per_epoch: usize,
    pub seed: u64,
}

/// The environment variable that widens the crash runs: the number of subsets per epoch
/// (exhaustive up to that many, and that many random ones beyond).
pub const CRASH_STATES_ENV: &str = "COWFAT_CRASH_STATES";

impl CrashPlan {
    /// The default plan of the CI runs: exhaustive up to 6 writes per epoch, 16 random
    /// subsets beyond.
    pub fn quick(seed: u64) -> Self {
        CrashPlan {
            exhaustive_limit: 64,
            random_per_epoch: 16,
            seed,
        }
    }

    /// This plan widened to `states` subsets per epoch: exhaustive up to that many, and that
    /// many random ones beyond.
    pub fn widened(mut self, states: Option<u64>) -> Self {
        if let Some(n) = states {
            self.exhaustive_limit = n.max(self.exhaustive_limit);
            self.random_per_epoch = usize::try_from(n).unwrap_or(usize::MAX);
        }
        self
    }

    /// `quick`, unless `COWFAT_CRASH_STATES=N` asks for `N` states per epoch.
    #[cfg(feature = "std")]
    pub fn from_env(seed: u64) -> Self {
        let states = std::env::var(CRASH_STATES_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        Self::quick(seed).widened(states)
    }
}

/// Which writes of one epoch reached the medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// One flag per write of the epoch, in issue order.
    pub landed: Vec<bool>,
    /// A write that did not land whole: (its index in the epoch, sectors of it that landed).
    pub torn: Option<(usize, usize)>,
}

impl Subset {
    /// The index of the last write that landed (whole or torn), if any: the crash came after it
    /// was issued.
    pub fn last_issued(&self) -> Option<usize> {
        let whole = self.landed.iter().rposition(|&l| l);
        match (whole, self.torn) {
            (Some(w), Some((t, _))) => Some(w.max(t)),
            (w, t) => w.or(t.map(|(t, _)| t)),
        }
    }
}

/// A small deterministic generator (xorshift64*), so sampled runs repeat exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The crash states of one epoch whose writes span `sectors[i]` sectors each. The subset where
/// every write landed is left out (it is the durable state of the next epoch, or the final
/// image); the empty subset is included.
pub fn epoch_subsets(sectors: &[usize], plan: &CrashPlan, epoch_seed: u64) -> Vec<Subset> {
    let n = sectors.len();
    let mut out: Vec<Subset> = Vec::new();
    let push = |s: Subset, out: &mut Vec<Subset>| {
        let everything = s.torn.is_none() && s.landed.iter().all(|&l| l);
        if !everything && !out.contains(&s) {
            out.push(s);
        }
    };
    let exhaustive = n < 64 && (1u64 << n) <= plan.exhaustive_limit;
    if exhaustive {
        for mask in 0..(1u64 << n) {
            let landed: Vec<bool> = (0..n).map(|i| mask & (1 << i) != 0).collect();
            push(
                Subset {
                    landed: landed.clone(),
                    torn: None,
                },
                &mut out,
            );
            // Each write that did not land may have been torn instead.
            for (i, &count) in sectors.iter().enumerate() {
                if !landed[i] && count > 1 {
                    push(
                        Subset {
                            landed: landed.clone(),
                            torn: Some((i, count / 2)),
                        },
                        &mut out,
                    );
                }
            }
        }
        return out;
    }
    // Every prefix (an in-order disk), each with the next write torn after one sector and
    // after half of it.
    for (k, &count) in sectors.iter().enumerate() {
        let landed: Vec<bool> = (0..n).map(|i| i < k).collect();
        push(
            Subset {
                landed: landed.clone(),
                torn: None,
            },
            &mut out,
        );
        for cut in [1, count / 2] {
            if cut >= 1 && cut < count {
                push(
                    Subset {
                        landed: landed.clone(),
                        torn: Some((k, cut)),
                    },
                    &mut out,
                );
            }
        }
    }
    // Each single omission and each single inclusion.
    for i in 0..n {
        push(
            Subset {
                landed: (0..n).map(|j| j != i).collect(),
                torn: None,
            },
            &mut out,
        );
        push(
            Subset {
                landed: (0..n).map(|j| j == i).collect(),
                torn: None,
            },
            &mut out,
        );
    }
    // Seeded random subsets, half of them with one missing write torn at a random sector.
    let mut rng = Rng::new(plan.seed ^ epoch_seed.wrapping_mul(0x1000_0000_01B3));
    for _ in 0..plan.random_per_epoch {
        let landed: Vec<bool> = (0..n).map(|_| rng.next_u64() & 1 == 1).collect();
        let missing: Vec<usize> = (0..n).filter(|&i| !landed[i] && sectors[i] > 1).collect();
        let torn = if !missing.is_empty() && rng.next_u64() & 1 == 1 {
            let i = missing[rng.below(missing.len() as u64) as usize];
            Some((i, 1 + rng.below(sectors[i] as u64 - 1) as usize))
        } else {
            None
        };
        push(Subset { landed, torn }, &mut out);
    }
    out
}

/// One crash state of a recorded run: the epoch it fell in and what of it landed.
#[derive(Debug, Clone)]
pub struct CrashState {
    pub epoch: usize,
    /// Index in the recorder's `ops` of the flush that opened the epoch (0 for the first).
    pub epoch_start: usize,
    /// Index in `ops` of the first op the crash may have come before: one past the last write
    /// that landed, or `epoch_start`.
    pub earliest_crash: usize,
    /// Index in `ops` of the flush that closed the epoch (`ops.len()` for the last one).
    pub latest_crash: usize,
    pub subset: Subset,
    /// Crash image.
    pub image: MemDevice,
}

impl CrashRecorder {
    /// Every crash state of the recording under `plan`, epoch by epoch. The image after every
    /// recorded write with all flushes done is not among them (it is `current()`).
    pub fn crash_states(&self, plan: &CrashPlan) -> Vec<CrashState> {
        let mut out = Vec::new();
        self.for_each_crash_state(plan, |s| out.push(s));
        out
    }

    /// Calls `f` with every crash state (without holding them all in memory).
    pub fn for_each_crash_state(&self, plan: &CrashPlan, mut f: impl FnMut(CrashState)) {
        let mut durable = self.image_after(0, None);
        let mut epoch = 0usize;
        let mut start = 0usize;
        let ops = &self.ops;
        while start <= ops.len() {
            let end = ops[start..]
                .iter()
                .position(|op| matches!(op, RecordedOp::Flush))
                .map_or(ops.len(), |p| start + p);
            let writes: Vec<(usize, u64, &[u8])> = (start..end)
                .filter_map(|i| match &ops[i] {
                    RecordedOp::Write { offset, data } => Some((i, *offset, data.as_slice())),
                    RecordedOp::Flush => None,
                })
                .collect();
            let sectors: Vec<usize> = writes.iter().map(|w| w.2.len().div_ceil(512)).collect();
            if !writes.is_empty() {
                for subset in epoch_subsets(&sectors, plan, epoch as u64) {
                    let mut image = durable.clone();
                    for (k, &(_, offset, data)) in writes.iter().enumerate() {
                        if subset.landed[k] {
                            image.put(offset, data);
                        } else if subset.torn.is_some_and(|(t, _)| t == k) {
                            let cut = subset.torn.map_or(0, |(_, c)| c * 512).min(data.len());
                            image.put(offset, &data[..cut]);
                        }
                    }
                    let earliest_crash = subset.last_issued().map_or(start, |k| writes[k].0 + 1);
                    f(CrashState {
                        epoch,
                        epoch_start: start,
                        earliest_crash,
                        latest_crash: end,
                        subset,
                        image,
                    });
                }
            }
            for &(_, offset, data) in &writes {
                durable.put(offset, data);
            }
            epoch += 1;
            start = end + 1;
        }
    }

    /// The image that survives a power cut right now with nothing of the cache landed: every
    /// write up to the last flush.
    pub fn durable_image(&self) -> MemDevice {
        let last_flush = self
            .ops
            .iter()
            .rposition(|op| matches!(op, RecordedOp::Flush))
            .map_or(0, |p| p + 1);
        let mut image = self.image_after(0, None);
        for op in &self.ops[..last_flush] {
            if let RecordedOp::Write { offset, data } = op {
                image.put(*offset, data);
            }
        }
        image
    }

    /// Writes issued since the last flush (still in the volatile cache).
    pub fn unflushed_writes(&self) -> usize {
        self.ops
            .iter()
            .rev()
            .take_while(|op| !matches!(op, RecordedOp::Flush))
            .count()
    }
}

/// Applies the writes that landed to `image` (for models that keep their own write lists).
pub fn apply_subset(image: &mut MemDevice, writes: &[(u64, &[u8])], subset: &Subset) {
    for (k, &(offset, data)) in writes.iter().enumerate() {
        if subset.landed[k] {
            image.put(offset, data);
        } else if let Some((t, cut)) = subset.torn {
            if t == k {
                image.put(offset, &data[..(cut * 512).min(data.len())]);
            }
        }
    }
}

/// Sectors each write spans, for [`epoch_subsets`].
pub fn sector_counts(lens: impl Iterator<Item = usize>) -> Vec<usize> {
    lens.map(|l| l.div_ceil(512)).collect::<Vec<_>>()
}
