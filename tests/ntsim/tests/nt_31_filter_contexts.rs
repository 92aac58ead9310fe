//! NT-31: filters share our objects. Every `FsContext` the driver hands out starts with an
//! advanced FCB header that accepts per-stream contexts, and the driver tears them down
//! (`FsRtlTeardownPerStreamContexts`, the filter's FreeCallback once) before the header goes.
//! ntsim bug-checks a header freed with contexts left.

mod common;
use common::*;

#[test]
fn nt_31_file_context_is_torn_down_when_the_fcb_goes() {
    let mut sim = Sim::new();
    let a = open_rw(&mut sim, "\\ctx.txt");
    let b = open_rw(&mut sim, "\\ctx.txt");
    let id = sim
        .attach_filter_context(a)
        .expect("header accepts contexts");
    assert!(sim.filter_context_present(a, id));
    assert!(sim.filter_context_present(b, id), "one stream, one header");
    sim.close(a);
    // The second handle keeps the FCB: the context stays.
    assert_eq!(sim.filter_context_frees(id), 0);
    assert!(sim.filter_context_present(b, id));
    sim.close(b);
    assert_eq!(
        sim.filter_context_frees(id),
        1,
        "FreeCallback once, at the FCB's end"
    );
    // The next open makes a fresh FCB: no context from before.
    let c = open_rw(&mut sim, "\\ctx.txt");
    assert!(!sim.filter_context_present(c, id));
    sim.close(c);
    assert_eq!(sim.filter_context_frees(id), 1);
    finish_clean(sim);
}

#[test]
fn nt_31_directory_context_is_torn_down_when_the_dcb_goes() {
    let mut sim = Sim::new();
    let d = sim
        .create(
            "\\dir",
            &Open::read_write()
                .disposition(disposition::FILE_CREATE)
                .options(options::FILE_DIRECTORY_FILE),
        )
        .expect("mkdir");
    let id = sim
        .attach_filter_context(d)
        .expect("DCB header accepts contexts");
    sim.close(d);
    assert_eq!(sim.filter_context_frees(id), 1);
    finish_clean(sim);
}

#[test]
fn nt_31_volume_open_context_is_torn_down_with_the_vcb() {
    let mut sim = Sim::new();
    let volume = sim.open_volume().expect("volume open");
    let id = sim
        .attach_filter_context(volume)
        .expect("the volume open's FsContext has an advanced header");
    assert!(sim.filter_context_present(volume, id));
    // Dismount through another volume handle: the VCB lives on while ours is open.
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(sim.filter_context_frees(id), 0);
    sim.close(volume);
    assert_eq!(
        sim.filter_context_frees(id),
        1,
        "FreeCallback once, with the VCB"
    );
    finish_clean(sim);
}
