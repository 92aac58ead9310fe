//! The mapped-file scenarios: each one a short story of system calls on its own file, with
//! what a file system must make of it.
//!
//! Expectations that differ between Linux and Windows are selected with `cfg` where they are
//! checked, each with a comment saying which platform promise it is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fileio;
use crate::mapping::View;
use crate::report::{Failure, Outcome, Step};

mod coherence;
mod empty;
mod layout;
mod no_flush;
mod resize;
pub mod seed004;
pub mod two_process;

/// What every scenario gets: where to work and how the run was asked to behave.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub dir: PathBuf,
    /// Sync and drop the page cache before reading a file back through a fresh handle, so the
    /// check sees the file system's stored bytes (Linux, root).
    pub drop_caches: bool,
    /// Self-test: views lose their writes, as if the file system ignored dirty mapped pages.
    pub inject_fault: bool,
}

impl Ctx {
    /// A read-write view honouring the self-test fault.
    pub fn map(&self, file: &fs::File, offset: u64, len: Option<usize>) -> io::Result<View> {
        Ok(View::map(file, offset, len)?.lose_writes(self.inject_fault))
    }

    /// The file's bytes as a new opener sees them (after a cache drop when asked for).
    pub fn reread(&self, path: &Path) -> Result<Vec<u8>, Failure> {
        if self.drop_caches {
            fs::File::open(path)
                .and_then(|f| f.sync_all())
                .step("fsync before dropping caches")?;
            fileio::drop_caches().step("write 3 to /proc/sys/vm/drop_caches")?;
        }
        fileio::read_whole(path).step("reopen and read the whole file")
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&Ctx, &Path) -> Outcome,
}

/// Every scenario, in the order they run.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "seed004_write_map_write_coherent",
        run: seed004::run,
    },
    Scenario {
        name: "coherence_write_visible_in_map",
        run: coherence::write_visible_in_map,
    },
    Scenario {
        name: "coherence_map_visible_to_read_after_msync",
        run: coherence::map_visible_after_flush,
    },
    Scenario {
        name: "coherence_map_visible_to_read_after_munmap",
        run: coherence::map_visible_after_unmap,
    },
    Scenario {
        name: "coherence_two_views_of_one_file",
        run: coherence::two_views,
    },
    Scenario {
        name: "two_processes_share_a_mapping",
        run: two_process::run,
    },
    Scenario {
        name: "extend_with_live_map",
        run: resize::extend_with_live_map,
    },
    Scenario {
        name: "shrink_with_live_map",
        run: resize::shrink_with_live_map,
    },
    Scenario {
        name: "map_empty_file",
        run: empty::map_empty_file,
    },
    Scenario {
        name: "map_writes_survive_close_without_msync",
        run: no_flush::close_handle_then_unmap,
    },
    Scenario {
        name: "map_writes_survive_unmap_without_msync",
        run: no_flush::unmap_then_close,
    },
    Scenario {
        name: "map_at_nonzero_offset",
        run: layout::nonzero_offset,
    },
    Scenario {
        name: "writes_across_page_boundaries",
        run: layout::page_boundaries,
    },
    Scenario {
        name: "write_past_mapped_end_then_remap",
        run: layout::write_past_mapped_end,
    },
];

/// Runs the scenarios whose name contains `filter` (all when `None`); each gets
/// `DIR/<name>.dat`, removed afterwards unless it failed or `keep` is set.
pub fn run_all(ctx: &Ctx, filter: Option<&str>, keep: bool, tally: &mut crate::report::Tally) {
    for scenario in ALL {
        if filter.is_some_and(|f| !scenario.name.contains(f)) {
            continue;
        }
        let path = ctx.dir.join(format!("{}.dat", scenario.name));
        // A file left by an earlier `--keep` run would change the starting state.
        let _ = fs::remove_file(&path);
        let outcome = (scenario.run)(ctx, &path);
        tally.record(scenario.name, &outcome);
        if outcome.is_ok() && !keep {
            let _ = fs::remove_file(&path);
        }
    }
}
