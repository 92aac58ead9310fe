//! overlay seal | commit | discard | status, for the volume or one file.

use super::Outcome;
use crate::cli::{OverlayAction, OverlayArgs};
use crate::error::{Cause, Failure};
use crate::output::print_json;
use crate::volume::{self, Session};

#[derive(Debug, serde::Serialize)]
struct FileStatus {
    path: String,
    in_base: bool,
    modified: bool,
    base_clusters: u64,
    overlay_clusters: u64,
    reserved_clusters: u64,
}

pub fn run(a: &OverlayArgs, index: Option<u32>) -> Outcome {
    if a.action == OverlayAction::Seal && a.path.is_some() {
        let why = Cause::Usage("seal applies to the whole volume and takes no path".into());
        return Err(Failure::new(&a.image, "seal", a.path.as_deref(), why));
    }
    // A path inside a mounted volume: ask the mount, which knows what the kernel caches.
    #[cfg(target_os = "linux")]
    if let Some(target) = crate::mount::overlay::mounted_target(&a.image, a.path.as_deref()) {
        return crate::mount::overlay::run(a, &target);
    }
    let writable = a.action != OverlayAction::Status;
    let mut s = volume::open(&a.image, writable, index)?;
    match (a.action, a.path.as_deref()) {
        (OverlayAction::Status, None) => volume_status(&s, a.json)?,
        (OverlayAction::Status, Some(p)) => file_status(&mut s, p, a.json)?,
        (action, path) => {
            change(&mut s, action, path)
                .map_err(|c| s.fail(verb(action), path.unwrap_or("/"), c))?;
            s.close()?;
        }
    }
    Ok(None)
}

fn verb(action: OverlayAction) -> &'static str {
    match action {
        OverlayAction::Seal => "seal",
        OverlayAction::Commit => "commit",
        OverlayAction::Discard => "discard the overlay of",
        OverlayAction::Status => "show the overlay of",
    }
}

fn change(s: &mut Session, action: OverlayAction, path: Option<&str>) -> Result<(), Cause> {
    let Some(path) = path else {
        let done = match action {
            OverlayAction::Seal => s.vol.seal(),
            OverlayAction::Commit => s.vol.commit(),
            _ => s.vol.discard(),
        };
        return Ok(done?);
    };
    let id = s.resolve(path)?;
    let done = match action {
        OverlayAction::Commit => s.vol.commit_file(id),
        _ => s.vol.discard_file(id),
    };
    Ok(done?)
}

fn volume_status(s: &Session, json: bool) -> Result<(), Failure> {
    let v = super::info::volume_json(&s.vol.volume_info());
    let printed = if json {
        print_json(&v)
    } else if v.sealed {
        println!(
            "sealed at {}; overlay {} clusters, base-only {} clusters, reserved {}",
            v.sealed_at.unwrap_or_default(),
            v.overlay_clusters,
            v.base_only_clusters,
            v.reserved_clusters
        );
        Ok(())
    } else {
        println!("not sealed");
        Ok(())
    };
    printed.map_err(|e| s.fail("show the overlay of", "/", Cause::Other(e.to_string())))
}

fn file_status(s: &mut Session, path: &str, json: bool) -> Result<(), Failure> {
    let fail = |s: &Session, c| s.fail("show the overlay of", path, c);
    let id = s.resolve(path).map_err(|c| fail(s, c))?;
    let st = s.vol.overlay_status(id).map_err(|e| fail(s, e.into()))?;
    let out = FileStatus {
        path: path.to_owned(),
        in_base: st.in_base,
        modified: st.modified,
        base_clusters: st.base_clusters,
        overlay_clusters: st.overlay_clusters,
        reserved_clusters: st.reserved_clusters,
    };
    if json {
        return print_json(&out).map_err(|e| fail(s, Cause::Other(e.to_string())));
    }
    let state = match (out.in_base, out.modified) {
        (false, _) => "new since the seal",
        (true, true) => "modified",
        (true, false) => "unchanged",
    };
    println!(
        "{path}: {state}; {} overlay clusters, {} shared with the base",
        out.overlay_clusters, out.base_clusters
    );
    Ok(())
}
