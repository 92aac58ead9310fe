//! info: what the image is, where the partition lies, what the volume holds.

use super::Outcome;
use crate::cli::InfoArgs;
use crate::error::Cause;
use crate::image::partition::Scheme;
use crate::image::ImageFormat;
use crate::output::{format_time, print_json, value_name};
use crate::size::human;
use crate::volume;

#[derive(Debug, serde::Serialize)]
pub struct Info {
    image: String,
    format: ImageFormat,
    disk_size: u64,
    partition_table: Scheme,
    partition: PartitionJson,
    volume: VolumeJson,
}

#[derive(Debug, serde::Serialize)]
struct PartitionJson {
    index: u32,
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, serde::Serialize)]
pub struct VolumeJson {
    pub label: String,
    pub serial: String,
    pub cluster_size: u32,
    pub total_clusters: u64,
    pub free_clusters: u64,
    pub available_clusters: u64,
    pub sealed: bool,
    pub overlay_clusters: u64,
    pub base_only_clusters: u64,
    pub reserved_clusters: u64,
    pub formatted: String,
    pub sealed_at: Option<String>,
}

pub fn volume_json(v: &fs_core::VolumeInfo) -> VolumeJson {
    VolumeJson {
        label: v.label.clone(),
        serial: format!("{:016X}", v.serial),
        cluster_size: v.cluster_size,
        total_clusters: v.total_clusters,
        free_clusters: v.free_clusters,
        available_clusters: v.available_clusters,
        sealed: v.sealed,
        overlay_clusters: v.overlay_clusters,
        base_only_clusters: v.base_only_clusters,
        reserved_clusters: v.reserved_clusters,
        formatted: format_time(v.format_time),
        sealed_at: v.sealed.then(|| format_time(v.seal_time)),
    }
}

pub fn run(a: &InfoArgs, index: Option<u32>) -> Outcome {
    let s = volume::open(&a.image, false, index)?;
    let f = &s.facts;
    let info = Info {
        image: a.image.display().to_string(),
        format: f.format,
        disk_size: f.disk_size,
        partition_table: f.table.scheme,
        partition: PartitionJson {
            index: f.partition.index,
            start: f.partition.start,
            size: f.partition.len,
            kind: f.partition.kind.to_string(),
        },
        volume: volume_json(&s.vol.volume_info()),
    };
    let printed = if a.json {
        print_json(&info)
    } else {
        print_text(&info)
    };
    printed.map_err(|e| s.fail("describe", "/", Cause::Other(e.to_string())))?;
    Ok(None)
}

fn print_text(i: &Info) -> std::io::Result<()> {
    use std::io::Write;
    let v = &i.volume;
    let cs = u64::from(v.cluster_size);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "image:        {} ({:?}, {})",
        i.image,
        i.format,
        human(i.disk_size)
    )?;
    writeln!(
        out,
        "partition:    {} #{} at {} ({}), type {}",
        value_name(&i.partition_table),
        i.partition.index,
        i.partition.start,
        human(i.partition.size),
        i.partition.kind
    )?;
    writeln!(out, "label:        {}", v.label)?;
    writeln!(out, "serial:       {}", v.serial)?;
    writeln!(
        out,
        "clusters:     {} of {} bytes, {} free ({})",
        v.total_clusters,
        cs,
        v.free_clusters,
        human(v.free_clusters * cs)
    )?;
    writeln!(out, "formatted:    {}", v.formatted)?;
    match &v.sealed_at {
        Some(t) => writeln!(
            out,
            "sealed:       {t}; overlay {} clusters, base-only {}",
            v.overlay_clusters, v.base_only_clusters
        ),
        None => writeln!(out, "sealed:       no"),
    }
}
