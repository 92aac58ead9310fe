//! The trace: every IRP sent to a file system device, its completion, every FS callback the
//! model invokes, and notable kernel decisions (a purge refused, a segment deleted).

/// ntsim's name for a file object: its creation number, stable for the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FoId(pub u32);

/// One trace entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An IRP handed to the file system (`IofCallDriver` on a file system device).
    Irp {
        /// `IRP_MJ_*`.
        major: u8,
        /// `IRP_MN_*`.
        minor: u8,
        /// Its file object, if any.
        file: Option<FoId>,
        /// `Irp->Flags` (`IRP_PAGING_IO`, `IRP_NOCACHE`, ...).
        flags: u32,
        /// `ByteOffset` for reads and writes.
        offset: i64,
        /// `Length` for reads and writes.
        length: u32,
    },
    /// The file system completed an IRP.
    Completed {
        /// `IRP_MJ_*`.
        major: u8,
        /// Its file object, if any.
        file: Option<FoId>,
        /// Final status.
        status: i32,
        /// `IoStatus.Information`.
        information: usize,
    },
    /// The model called into the file system outside an IRP (Cc or FsRtl callbacks).
    Callback {
        /// The callback's name (`AcquireForLazyWrite`, `PreAcquireForSectionSynchronization`...).
        name: &'static str,
        /// The file object involved, if any.
        file: Option<FoId>,
        /// Its result (status or boolean as 0/1).
        result: i32,
    },
    /// A kernel routine the driver called, or a decision of the model.
    Kernel {
        /// What happened (`CcPurgeCacheSection refused`, `segment deleted`...).
        name: &'static str,
        /// The file object involved, if any.
        file: Option<FoId>,
    },
}

impl Event {
    /// Is this the dispatch of an IRP of `major` (any file)?
    #[must_use]
    pub fn is_irp(&self, wanted: u32) -> bool {
        matches!(self, Event::Irp { major, .. } if u32::from(*major) == wanted)
    }

    /// Is this the dispatch of an IRP of `major` on `fo`?
    #[must_use]
    pub fn is_irp_on(&self, wanted: u32, fo: FoId) -> bool {
        matches!(self, Event::Irp { major, file: Some(f), .. } if u32::from(*major) == wanted && *f == fo)
    }
}
