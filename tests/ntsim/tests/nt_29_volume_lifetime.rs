//! NT-29: volume lifetime. The driver references the disk for the VCB's life, swaps in a
//! spare VPB at dismount (the I/O manager in ntsim never does), frees the old VPB with the
//! old VCB at the old volume's last close, handles PnP removal (its part, then passed down to
//! the disk) and passes device controls to the disk.

mod common;
use common::*;
use ntsim::disk::{
    IRP_MN_CANCEL_REMOVE_DEVICE, IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_REMOVE_DEVICE,
    IRP_MN_SURPRISE_REMOVAL, STATUS_NO_SUCH_DEVICE,
};
use windows_sys::Win32::Foundation::{STATUS_INVALID_DEVICE_REQUEST, STATUS_VOLUME_DISMOUNTED};

/// `IOCTL_DISK_GET_LENGTH_INFO`, `IOCTL_DISK_GET_DRIVE_GEOMETRY` (both METHOD_BUFFERED).
const IOCTL_DISK_GET_LENGTH_INFO: u32 = 0x0007_405C;
const IOCTL_DISK_GET_DRIVE_GEOMETRY: u32 = 0x0007_0000;

#[test]
fn nt_29_dismount_reopen_then_close_an_old_handle_tears_down_only_the_old_volume() {
    let mut sim = Sim::new();
    assert_eq!(sim.disk_references(), 0);
    let old = open_rw(&mut sim, "\\old.txt");
    sim.write(old, Some(0), b"before").expect("write");
    assert_eq!(sim.disk_references(), 1, "the VCB references the disk");
    let (old_vpb, old_device) = sim.handle_volume(old);
    assert_eq!(old_vpb, sim.disk_vpb());
    assert_eq!(sim.disk_vpb_references(), 1);

    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert!(!sim.is_mounted());
    assert_ne!(
        sim.disk_vpb(),
        old_vpb,
        "the driver swapped in its spare VPB"
    );
    assert_eq!(sim.disk_vpb_references(), 0);

    // The next open mounts afresh, on the new VPB, with a new volume device.
    let new = open_rw(&mut sim, "\\new.txt");
    let (new_vpb, new_device) = sim.handle_volume(new);
    assert_eq!(new_vpb, sim.disk_vpb());
    assert_ne!(new_device, old_device);
    assert_eq!(sim.live_volume_devices(), 2);
    assert_eq!(sim.disk_references(), 2, "each VCB references the disk");
    // The old handle still reaches the old volume, which refuses I/O.
    assert_eq!(sim.handle_volume(old), (old_vpb, old_device));
    assert_eq!(sim.read(old, 0, 6), Err(STATUS_VOLUME_DISMOUNTED));

    sim.close(old);
    assert_eq!(
        sim.live_volume_devices(),
        1,
        "the old VCB went with its last close"
    );
    assert_eq!(sim.disk_references(), 1);
    assert_eq!(
        sim.disk_vpb_references(),
        1,
        "the new volume's VPB is untouched"
    );
    // The new volume works, and sees what the old one flushed at dismount.
    sim.write(new, Some(0), b"after")
        .expect("write on the new mount");
    assert_eq!(sim.read(new, 0, 5).as_deref(), Ok(&b"after"[..]));
    let again = open_rw(&mut sim, "\\old.txt");
    assert_eq!(sim.read(again, 0, 6).as_deref(), Ok(&b"before"[..]));
    sim.close(again);
    sim.close(new);
    finish_clean(sim);
}

#[test]
fn nt_29_dismount_with_nothing_else_open_frees_everything_at_the_last_close() {
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    assert_eq!(sim.disk_references(), 1, "the VCB references the disk");
    assert_eq!(sim.live_volume_devices(), 1);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(sim.live_volume_devices(), 0);
    assert_eq!(sim.disk_references(), 0, "the reference went with the VCB");
    // Mount and dismount again on the spare: each cycle leaves nothing behind.
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    finish_clean(sim);
}

#[test]
fn nt_29_surprise_removal_with_open_handles() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\gone.txt");
    sim.write(h, Some(0), &filled(7, 8192))
        .expect("cached write");
    let d = sim
        .create(
            "\\d",
            &Open::read_write()
                .disposition(disposition::FILE_CREATE)
                .options(options::FILE_DIRECTORY_FILE),
        )
        .expect("mkdir");
    assert_eq!(sim.pnp(IRP_MN_SURPRISE_REMOVAL), status::STATUS_SUCCESS);
    assert_eq!(
        sim.disk_pnp_requests(),
        vec![IRP_MN_SURPRISE_REMOVAL],
        "passed down"
    );
    assert!(!sim.is_mounted());
    // Open handles fail cleanly; nothing new opens on a disk that is gone.
    assert_eq!(sim.read(h, 0, 10), Err(STATUS_VOLUME_DISMOUNTED));
    assert_eq!(sim.write(h, Some(0), b"x"), Err(STATUS_VOLUME_DISMOUNTED));
    assert_eq!(
        sim.create("\\other", &Open::read_write()),
        Err(STATUS_NO_SUCH_DEVICE)
    );
    assert_eq!(sim.live_volume_devices(), 1, "handles keep the VCB");
    // Cleanup and close tear it down.
    sim.close(h);
    sim.close(d);
    assert_eq!(sim.live_volume_devices(), 0);
    assert_eq!(sim.disk_references(), 0);
    finish_clean(sim);
}

#[test]
fn nt_29_query_remove_with_open_handles_is_refused_then_cancelled() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\busy.txt");
    assert_eq!(
        sim.pnp(IRP_MN_QUERY_REMOVE_DEVICE),
        status::STATUS_ACCESS_DENIED
    );
    assert!(
        sim.disk_pnp_requests().is_empty(),
        "refused before the disk"
    );
    assert!(sim.is_mounted());
    sim.write(h, Some(0), b"still here")
        .expect("the volume still works");
    // The PnP manager cancels: passed down, and the volume is not left locked.
    assert_eq!(sim.pnp(IRP_MN_CANCEL_REMOVE_DEVICE), status::STATUS_SUCCESS);
    assert_eq!(sim.disk_pnp_requests(), vec![IRP_MN_CANCEL_REMOVE_DEVICE]);
    let other = open_rw(&mut sim, "\\other.txt");
    sim.close(other);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_29_query_remove_without_handles_is_forwarded_and_dismounts() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\kept.txt");
    sim.write(h, Some(0), b"flushed first")
        .expect("cached write");
    sim.close(h);
    assert_eq!(sim.pnp(IRP_MN_QUERY_REMOVE_DEVICE), status::STATUS_SUCCESS);
    assert_eq!(sim.disk_pnp_requests(), vec![IRP_MN_QUERY_REMOVE_DEVICE]);
    // Nothing holds the disk any more: the volume went at once.
    assert!(!sim.is_mounted());
    assert_eq!(sim.live_volume_devices(), 0);
    assert_eq!(sim.disk_references(), 0);
    // While the removal is pending nothing mounts.
    assert_eq!(
        sim.create("\\kept.txt", &Open::read_write()),
        Err(STATUS_NO_SUCH_DEVICE)
    );
    // Cancelled: straight to the disk (nothing is mounted), and the volume mounts again with
    // the data the query flushed.
    assert_eq!(sim.pnp(IRP_MN_CANCEL_REMOVE_DEVICE), status::STATUS_SUCCESS);
    assert_eq!(
        sim.disk_pnp_requests(),
        vec![IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_CANCEL_REMOVE_DEVICE]
    );
    let again = open_rw(&mut sim, "\\kept.txt");
    assert_eq!(sim.read(again, 0, 13).as_deref(), Ok(&b"flushed first"[..]));
    sim.close(again);
    // Query again, then remove: the disk goes.
    assert_eq!(sim.pnp(IRP_MN_QUERY_REMOVE_DEVICE), status::STATUS_SUCCESS);
    assert_eq!(sim.pnp(IRP_MN_REMOVE_DEVICE), status::STATUS_SUCCESS);
    assert_eq!(
        sim.disk_pnp_requests()[2..],
        [IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_REMOVE_DEVICE]
    );
    assert_eq!(sim.mount(), STATUS_NO_SUCH_DEVICE);
    finish_clean(sim);
}

#[test]
fn nt_29_query_remove_refused_by_the_disk_unlocks_the_volume() {
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    sim.set_disk_refuses_query_remove(true);
    assert_eq!(
        sim.pnp(IRP_MN_QUERY_REMOVE_DEVICE),
        STATUS_INVALID_DEVICE_REQUEST
    );
    assert_eq!(sim.disk_pnp_requests(), vec![IRP_MN_QUERY_REMOVE_DEVICE]);
    assert!(sim.is_mounted());
    let h = open_rw(&mut sim, "\\after.txt");
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_29_device_controls_are_passed_to_the_disk_and_answered_there() {
    let mut sim = Sim::new();
    let volume = sim.open_volume().expect("volume open");
    let before = sim.disk_device_controls().len();
    let (status, out) = sim.device_control(volume, IOCTL_DISK_GET_LENGTH_INFO, &[], 8);
    assert_eq!(status, status::STATUS_SUCCESS);
    assert_eq!(
        out,
        (16u64 << 20).to_le_bytes().to_vec(),
        "the disk's length"
    );
    // One the disk does not know: its answer comes back unchanged.
    let (status, out) = sim.device_control(volume, IOCTL_DISK_GET_DRIVE_GEOMETRY, &[], 24);
    assert_eq!(status, STATUS_INVALID_DEVICE_REQUEST);
    assert!(out.is_empty());
    // Through a file handle too.
    let f = open_rw(&mut sim, "\\f.txt");
    let (status, _) = sim.device_control(f, IOCTL_DISK_GET_LENGTH_INFO, &[], 8);
    assert_eq!(status, status::STATUS_SUCCESS);
    assert_eq!(
        sim.disk_device_controls()[before..],
        [
            IOCTL_DISK_GET_LENGTH_INFO,
            IOCTL_DISK_GET_DRIVE_GEOMETRY,
            IOCTL_DISK_GET_LENGTH_INFO
        ]
    );
    sim.close(f);
    sim.close(volume);
    finish_clean(sim);
}
