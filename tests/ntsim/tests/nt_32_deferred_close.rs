//! NT-32: a close never waits. Mm deletes a file's segment on its own thread while another
//! thread is inside the driver holding the volume's VCB resource: the close completes at once,
//! queued; the FCB stays until the system worker thread runs the queue. Dismount and the
//! volume's teardown drain the queue; nothing leaks.

mod common;
use common::*;

/// The other thread inside the driver (a create in progress, say).
const OTHER_THREAD: u32 = 7;

/// A file whose only reference left is Mm's (a cached write made the control area, the
/// handle is closed): memory pressure will delete the segment and close the file object.
fn file_only_mm_references(sim: &mut Sim, path: &str) -> FoId {
    let h = open_rw(sim, path);
    sim.write(h, Some(0), &filled(0x32, 10_000))
        .expect("cached write");
    let fo = sim.file_id(h);
    sim.close(h);
    assert!(sim.file_object_alive(fo), "Mm still references it");
    fo
}

fn close_completed(sim: &Sim, fo: FoId) -> bool {
    sim.trace().iter().any(|e| {
        matches!(e, Event::Completed { major, file: Some(f), status, .. }
            if u32::from(*major) == mj::CLOSE && *f == fo && *status == status::STATUS_SUCCESS)
    })
}

#[test]
fn nt_32_close_from_mm_while_the_volume_is_held_completes_and_the_worker_frees_the_fcb() {
    let mut sim = Sim::new();
    let fo = file_only_mm_references(&mut sim, "\\mapped.bin");
    let fcbs = sim.pool_blocks(b"CfFc");
    let ccbs = sim.pool_blocks(b"CfCc");

    sim.hold_volume_exclusive(OTHER_THREAD);
    // Queueing a close must not need pool (NT-26): every pool allocation fails meanwhile.
    sim.fail_pool_randomly(1_000_000, 1);
    sim.memory_pressure();
    sim.fail_pool_randomly(0, 1);
    assert!(close_completed(&sim, fo), "the close completed at once");
    assert!(
        !sim.file_object_alive(fo),
        "the I/O manager freed the file object"
    );
    assert_eq!(
        sim.pool_blocks(b"CfFc"),
        fcbs,
        "the FCB waits for the worker"
    );
    assert_eq!(
        sim.pool_blocks(b"CfCc"),
        ccbs,
        "so does the CCB, which holds the entry"
    );
    assert_eq!(sim.work_items_queued(), 1, "the close worker is queued");

    sim.release_volume();
    assert_eq!(sim.run_work_items(), 1);
    assert_eq!(
        sim.pool_blocks(b"CfFc"),
        fcbs - 1,
        "the worker freed the FCB"
    );
    assert_eq!(sim.pool_blocks(b"CfCc"), ccbs - 1);
    // The volume goes on as before: the name opens again, with the data.
    let again = open_rw(&mut sim, "\\mapped.bin");
    assert_eq!(sim.read(again, 0, 10_000), Ok(filled(0x32, 10_000)));
    sim.close(again);
    finish_clean(sim);
}

#[test]
fn nt_32_many_queued_closes_run_in_one_worker_pass() {
    let mut sim = Sim::new();
    let files: Vec<FoId> = (0..5)
        .map(|i| file_only_mm_references(&mut sim, &format!("\\f{i}")))
        .collect();
    let fcbs = sim.pool_blocks(b"CfFc");
    sim.hold_volume_exclusive(OTHER_THREAD);
    sim.memory_pressure();
    for fo in &files {
        assert!(close_completed(&sim, *fo));
    }
    assert_eq!(sim.work_items_queued(), 1, "one worker for the whole queue");
    sim.release_volume();
    assert_eq!(sim.run_work_items(), 1);
    assert_eq!(sim.pool_blocks(b"CfFc"), fcbs - 5);
    finish_clean(sim);
}

#[test]
fn nt_32_dismount_drains_the_queue_and_the_worker_tears_the_volume_down() {
    let mut sim = Sim::new();
    let _fo = file_only_mm_references(&mut sim, "\\late.bin");
    sim.hold_volume_exclusive(OTHER_THREAD);
    sim.memory_pressure();
    sim.release_volume();
    assert_eq!(sim.work_items_queued(), 1);

    // Dismount with the worker still queued: it runs the queued close itself.
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(sim.pool_blocks(b"CfFc"), 0, "dismount ran the queued close");
    // The volume's last file object is closed, but the worker still points at the VCB: the
    // volume device and its work items stay until the worker has run.
    assert_eq!(
        sim.pool_blocks(b"IoWk"),
        2,
        "the VCB's two work items are still there"
    );
    assert_eq!(sim.run_work_items(), 1);
    assert_eq!(sim.pool_blocks(b"IoWk"), 0, "the worker tore the VCB down");
    finish_clean(sim);
}

#[test]
fn nt_32_a_close_on_the_thread_that_holds_the_volume_runs_at_once() {
    // Dismount holds the VCB resource while its purges close Mm's file objects: those closes
    // get the resource again and finish inline, nothing is queued.
    let mut sim = Sim::new();
    let fo = file_only_mm_references(&mut sim, "\\inline.bin");
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert!(close_completed(&sim, fo));
    assert_eq!(sim.work_items_queued(), 0);
    assert_eq!(sim.pool_blocks(b"CfFc"), 0);
    finish_clean(sim);
}
