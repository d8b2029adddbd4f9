//! Filesystems: `df -P` (with `df -P -i`), Lustre's `lfs df` (with `lfs df -i`) and GPFS's
//! `mmdf <fs> -Y`.
//!
//! Each configured mount becomes `fs/<name>` with `size_bytes`, `used_bytes`, `avail_bytes`,
//! `used_pct` and, where the command gives it, `inodes_used_pct`. Percentages are the ones the
//! command itself prints (`Capacity`/`Use%`/`IUse%`, GPFS's `100 - freeBlocksPct`), so the
//! dashboard says what an admin sees at the prompt. Lustre reports also name the fullest OST
//! (`fullest_ost_used_pct`, label `fullest_ost`) and count inactive OSTs (`osts_inactive`).
//! The status is `degraded` from `degraded_pct` and `failed` from `failed_pct`, judged on the
//! larger of the space and inode percentages.
//!
//! Parsing is tolerant: lines it cannot read (a shell prompt, `(snip)`, a wrapped device name)
//! are skipped, and an output with no usable line is an error that says so.

use crate::reading::{first_line, ParseError, Reading};
use sitrep_domain::status::Status;

/// Which command reads a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `df -P <path>` and `df -P -i <path>`.
    Df,
    /// `lfs df <path>` and `lfs df -i <path>`.
    Lustre,
    /// `mmdf <device> -Y`.
    Gpfs,
}

impl Kind {
    /// The commands that read a mount of this kind: space first, then inodes when separate.
    pub fn commands(self, path: &str, device: &str) -> Vec<Vec<String>> {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match self {
            Kind::Df => vec![v(&["df", "-P", path]), v(&["df", "-P", "-i", path])],
            Kind::Lustre => vec![v(&["lfs", "df", path]), v(&["lfs", "df", "-i", path])],
            Kind::Gpfs => vec![v(&["mmdf", device, "-Y"])],
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "df" => Ok(Kind::Df),
            "lustre" => Ok(Kind::Lustre),
            "gpfs" => Ok(Kind::Gpfs),
            other => Err(format!("{other:?} is not a filesystem kind; expected df, lustre or gpfs")),
        }
    }
}

/// What a command says about one filesystem.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub size_bytes: f64,
    pub used_bytes: f64,
    pub avail_bytes: f64,
    pub used_pct: f64,
    pub inodes_used_pct: Option<f64>,
    /// Where the filesystem is mounted, as the command printed it.
    pub mounted_on: Option<String>,
    /// Lustre: the fullest OST and its use.
    pub fullest_ost: Option<(String, f64)>,
    /// Lustre: OSTs reported inactive.
    pub osts_inactive: u32,
    /// Lustre with `-i`: the MDT with the most inodes used, and its use.
    pub fullest_mdt: Option<(String, f64)>,
}

/// The thresholds a mount is judged by, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub degraded_pct: f64,
    pub failed_pct: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { degraded_pct: 90.0, failed_pct: 95.0 }
    }
}

fn percent(field: &str) -> Option<f64> {
    field.strip_suffix('%')?.parse().ok()
}

/// The bytes per block that a `df` or `lfs df` header names (`1024-blocks`, `1K-blocks`,
/// `512-blocks`).
fn block_size(header: &str) -> Option<f64> {
    let word = header.split_whitespace().find(|w| w.to_ascii_lowercase().ends_with("-blocks"))?;
    let n = word[..word.len() - "-blocks".len()].to_ascii_uppercase();
    match n.strip_suffix('K') {
        Some(k) => k.parse::<f64>().ok().map(|k| k * 1024.0),
        None => n.parse().ok(),
    }
}

/// `df -P <path>`: the last data line (there is one per path).
pub fn df(text: &str) -> Result<Usage, ParseError> {
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with("Filesystem"));
    let header = lines.next().ok_or_else(|| no_table(text, "df"))?;
    let block = block_size(header).unwrap_or(1024.0);
    let row = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (size, used, avail) =
                (f.get(1)?.parse::<f64>().ok()?, f.get(2)?.parse::<f64>().ok()?, f.get(3)?.parse::<f64>().ok()?);
            let pct = percent(f.get(4)?).unwrap_or(0.0);
            Some(Usage {
                size_bytes: size * block,
                used_bytes: used * block,
                avail_bytes: avail * block,
                used_pct: pct,
                mounted_on: Some(f[5..].join(" ")).filter(|m| !m.is_empty()),
                ..Usage::default()
            })
        })
        .last();
    row.ok_or_else(|| no_table(text, "df"))
}

/// `df -P -i <path>`: the inode use in percent, None when the filesystem has no inode count
/// (`IUse%` is `-`).
pub fn df_inodes(text: &str) -> Result<Option<f64>, ParseError> {
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with("Filesystem"));
    lines.next().ok_or_else(|| no_table(text, "df -i"))?;
    let row = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1)?.parse::<f64>().ok()?;
            Some(f.get(4).and_then(|p| percent(p)))
        })
        .last();
    row.ok_or_else(|| no_table(text, "df -i"))
}

fn no_table(text: &str, what: &str) -> ParseError {
    if text.trim().is_empty() {
        ParseError::new("printed nothing")
    } else {
        ParseError::new(format!("printed no {what} table: {:?}", first_line(text.trim())))
    }
}

/// One row of `lfs df`: the target (`exacloud-OST0003_UUID`, or `filesystem_summary:`), the
/// four numbers, and whether it is a summary.
struct LfsRow<'a> {
    target: &'a str,
    total: f64,
    used: f64,
    avail: f64,
    pct: f64,
    mount: &'a str,
}

fn lfs_rows(text: &str) -> Vec<LfsRow<'_>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(LfsRow {
                target: f.first()?,
                total: f.get(1)?.parse().ok()?,
                used: f.get(2)?.parse().ok()?,
                avail: f.get(3)?.parse().ok()?,
                pct: percent(f.get(4)?)?,
                mount: f.get(5).copied().unwrap_or(""),
            })
        })
        .collect()
}

/// The short name of a Lustre target: `exacloud-OST000a_UUID` is `OST000a`.
fn target_name(uuid: &str) -> String {
    let t = uuid.trim_end_matches("_UUID");
    t.rsplit_once('-').map_or(t, |(_, name)| name).to_owned()
}

/// `lfs df <path>` (1K blocks), with `lfs df -i <path>` when given.
pub fn lustre(text: &str, inodes: Option<&str>) -> Result<Usage, ParseError> {
    let rows = lfs_rows(text);
    let osts: Vec<&LfsRow> = rows.iter().filter(|r| r.target.contains("OST")).collect();
    let summary = rows.iter().find(|r| r.target.starts_with("filesystem_summary"));
    let mut u = match summary {
        Some(s) => Usage {
            size_bytes: s.total * 1024.0,
            used_bytes: s.used * 1024.0,
            avail_bytes: s.avail * 1024.0,
            used_pct: s.pct,
            mounted_on: Some(s.mount.to_owned()),
            ..Usage::default()
        },
        // No summary line: the OSTs hold the data, so their sum is the filesystem.
        None if !osts.is_empty() => {
            let (t, us, a) = osts.iter().fold((0.0, 0.0, 0.0), |(t, u, a), r| (t + r.total, u + r.used, a + r.avail));
            Usage {
                size_bytes: t * 1024.0,
                used_bytes: us * 1024.0,
                avail_bytes: a * 1024.0,
                used_pct: if us + a > 0.0 { (us / (us + a) * 100.0).ceil() } else { 0.0 },
                mounted_on: osts[0].mount.split('[').next().map(str::to_owned),
                ..Usage::default()
            }
        }
        None => return Err(no_table(text, "lfs df")),
    };
    u.fullest_ost = osts
        .iter()
        .fold(None::<&LfsRow>, |best, r| if best.is_none_or(|b| r.pct > b.pct) { Some(r) } else { best })
        .map(|r| (target_name(r.target), r.pct));
    u.osts_inactive =
        text.lines().filter(|l| l.contains("OST") && l.to_ascii_lowercase().contains("inactive")).count() as u32;
    if let Some(itext) = inodes {
        let rows = lfs_rows(itext);
        let mdts: Vec<&LfsRow> = rows.iter().filter(|r| r.target.contains("MDT")).collect();
        let summary = rows.iter().find(|r| r.target.starts_with("filesystem_summary"));
        u.inodes_used_pct = match summary {
            Some(s) => Some(s.pct),
            None if !mdts.is_empty() => {
                let (used, total) = mdts.iter().fold((0.0, 0.0), |(u, t), r| (u + r.used, t + r.total));
                Some(if total > 0.0 { (used / total * 100.0).ceil() } else { 0.0 })
            }
            None => return Err(no_table(itext, "lfs df -i")),
        };
        u.fullest_mdt = mdts
            .iter()
            .fold(None::<&&LfsRow>, |best, r| if best.is_none_or(|b| r.pct > b.pct) { Some(r) } else { best })
            .map(|r| (target_name(r.target), r.pct));
    }
    Ok(u)
}

/// `mmdf <fs> -Y`: the `fsTotal` row (sizes in KiB) and the `inode` row.
pub fn gpfs(text: &str) -> Result<Usage, ParseError> {
    // Each row type has its HEADER row naming the fields; data rows follow it.
    let mut headers: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    let mut total = None;
    let mut inodes = None;
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split(':').collect();
        if f.len() < 3 || f[0] != "mmdf" {
            continue;
        }
        if f[2] == "HEADER" {
            headers.insert(f[1], f.clone());
            continue;
        }
        let Some(h) = headers.get(f[1]) else { continue };
        let get =
            |name: &str| h.iter().position(|x| *x == name).and_then(|i| f.get(i)).and_then(|v| v.parse::<f64>().ok());
        match f[1] {
            "fsTotal" => total = Some((get("fsSize"), get("freeBlocks"), get("freeBlocksPct"))),
            "inode" => inodes = Some((get("usedInodes"), get("maxInodes"))),
            _ => {}
        }
    }
    let Some((Some(size), Some(free), pct)) = total else {
        return Err(no_table(text, "mmdf fsTotal"));
    };
    let used = (size - free).max(0.0);
    Ok(Usage {
        size_bytes: size * 1024.0,
        used_bytes: used * 1024.0,
        avail_bytes: free * 1024.0,
        used_pct: pct.map_or_else(|| if size > 0.0 { (used / size * 100.0).round() } else { 0.0 }, |p| 100.0 - p),
        inodes_used_pct: match inodes {
            Some((Some(used), Some(max))) if max > 0.0 => Some((used / max * 1000.0).round() / 10.0),
            _ => None,
        },
        ..Usage::default()
    })
}

/// The `fs/<name>` reading of a mount's usage. `path` is the configured mount point: when `df`
/// shows the filesystem mounted somewhere else, the path is not mounted (df then describes the
/// filesystem beneath it) and the mount has failed.
pub fn reading(name: &str, path: &str, kind: Kind, usage: &Usage, t: Thresholds) -> Reading {
    let mut r = Reading::new("fs", name)
        .metric("size_bytes", usage.size_bytes)
        .metric("used_bytes", usage.used_bytes)
        .metric("avail_bytes", usage.avail_bytes)
        .metric("used_pct", usage.used_pct)
        .label("kind", "filesystem")
        .label("mount", path)
        .label("fs_type", format!("{kind:?}").to_ascii_lowercase());
    if let Some(i) = usage.inodes_used_pct {
        r = r.metric("inodes_used_pct", i);
    }
    let mut message = format!("{}% used, {} free", usage.used_pct, human_bytes(usage.avail_bytes));
    if let Some(i) = usage.inodes_used_pct {
        message.push_str(&format!(", {i}% of inodes used"));
    }
    if let Some((ost, pct)) = &usage.fullest_ost {
        r = r.metric("fullest_ost_used_pct", *pct).label("fullest_ost", ost.clone());
        message.push_str(&format!("; fullest OST {ost} at {pct}%"));
    }
    if let Some((mdt, pct)) = &usage.fullest_mdt {
        message.push_str(&format!("; fullest MDT {mdt} at {pct}% of inodes"));
    }
    if kind == Kind::Lustre {
        r = r.metric("osts_inactive", usage.osts_inactive.into());
        if usage.osts_inactive > 0 {
            message.push_str(&format!("; {} OST(s) inactive", usage.osts_inactive));
        }
    }
    let worst = usage.used_pct.max(usage.inodes_used_pct.unwrap_or(0.0));
    let elsewhere = kind == Kind::Df
        && usage.mounted_on.as_deref().is_some_and(|m| m.trim_end_matches('/') != path.trim_end_matches('/'));
    if elsewhere {
        // The figures are those of the filesystem beneath: none of them is this mount's.
        let shown = usage.mounted_on.as_deref().unwrap_or("another filesystem");
        return Reading::new("fs", name)
            .label("kind", "filesystem")
            .label("mount", path)
            .label("fs_type", "df")
            .status(Status::Failed, format!("{path} is not mounted: df shows {shown} instead"));
    }
    let status = if worst >= t.failed_pct {
        Status::Failed
    } else if worst >= t.degraded_pct || usage.osts_inactive > 0 {
        Status::Degraded
    } else {
        Status::Ok
    };
    r.status(status, message)
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LFS: &str = include_str!("../tests/fixtures/hpc/fs-lustre-lfs-df-ddn-exascaler-cloud.txt");
    const LFS_I: &str = include_str!("../tests/fixtures/hpc/fs-lustre-lfs-df-i-abci-groups-excerpt.txt");
    const MMDF: &str = include_str!("../tests/fixtures/hpc/fs-gpfs-mmdf-Y-treydock-gpfs_exporter.txt");
    /// Hand-written in the format of GNU coreutils' `df -P` and `df -P -i` (no real HPC capture
    /// was found; see SOURCES.md).
    const DF: &str = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
        10.0.0.1@o2ib:10.0.0.2@o2ib:/glade 21474836480 15247133900 6227702580 72% /glade\n";
    const DF_I: &str = "Filesystem Inodes IUsed IFree IUse% Mounted on\n\
        10.0.0.1@o2ib:10.0.0.2@o2ib:/glade 1000000 423000 577000 43% /glade\n";

    #[test]
    fn df_gives_sizes_in_bytes_and_its_own_percentages() {
        let mut u = df(DF).unwrap();
        u.inodes_used_pct = df_inodes(DF_I).unwrap();
        assert_eq!(u.size_bytes, 21474836480.0 * 1024.0);
        assert_eq!(u.used_bytes, 15247133900.0 * 1024.0);
        assert_eq!(u.avail_bytes, 6227702580.0 * 1024.0);
        assert_eq!((u.used_pct, u.inodes_used_pct), (72.0, Some(43.0)));
        let r = reading("glade", "/glade", Kind::Df, &u, Thresholds::default());
        assert_eq!(r.component, "fs/glade");
        assert_eq!((r.status, r.message.as_str()), (Status::Ok, "72% used, 5.8 TiB free, 43% of inodes used"));
    }

    #[test]
    fn df_of_a_path_that_is_not_mounted_fails_naming_what_df_showed_instead() {
        let text = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 50 50 50% /\n";
        let r = reading("glade", "/glade", Kind::Df, &df(text).unwrap(), Thresholds::default());
        assert_eq!((r.status, r.message.as_str()), (Status::Failed, "/glade is not mounted: df shows / instead"));
        assert!(r.metrics.is_empty(), "the figures are the root filesystem's: {:?}", r.metrics);
    }

    #[test]
    fn df_with_512_byte_blocks_and_no_inode_count_is_read() {
        let text = "Filesystem 512-blocks Used Available Capacity Mounted on\n/dev/sdb 2000 1000 1000 50% /data\n";
        assert_eq!(df(text).unwrap().size_bytes, 1_024_000.0);
        let itext = "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/sdb 0 0 0 - /data\n";
        assert_eq!(df_inodes(itext).unwrap(), None);
    }

    #[test]
    fn lustre_takes_the_summary_and_names_the_fullest_ost() {
        let u = lustre(LFS, None).unwrap();
        assert_eq!(u.size_bytes, 12706795008.0 * 1024.0);
        assert_eq!(u.used_bytes, 30348.0 * 1024.0);
        assert_eq!(u.avail_bytes, 12577522452.0 * 1024.0);
        assert_eq!(u.used_pct, 1.0);
        assert_eq!(u.mounted_on.as_deref(), Some("/mnt/exacloud"));
        // Every OST is at 1%: the first of them is the fullest.
        assert_eq!(u.fullest_ost, Some(("OST0000".to_owned(), 1.0)));
        let r = reading("exacloud", "/mnt/exacloud", Kind::Lustre, &u, Thresholds::default());
        assert_eq!(r.labels["fullest_ost"], "OST0000");
        assert_eq!(r.get("osts_inactive"), 0.0);
        assert_eq!(r.status, Status::Ok);
    }

    #[test]
    fn lustre_inodes_without_a_summary_are_summed_over_the_mdts_and_the_fullest_named() {
        let u = lustre(LFS, Some(LFS_I)).unwrap();
        // (904313344 + 2778144306 + 935143862 + 1356224703 + 402932004 + 433) / (6 * 3110850464)
        assert_eq!(u.inodes_used_pct, Some(35.0));
        assert_eq!(u.fullest_mdt, Some(("MDT0001".to_owned(), 90.0)));
        let r = reading("groups", "/groups", Kind::Lustre, &u, Thresholds::default());
        assert!(
            r.message.ends_with("; fullest OST OST0000 at 1%; fullest MDT MDT0001 at 90% of inodes"),
            "{}",
            r.message
        );
    }

    #[test]
    fn an_inactive_ost_degrades_a_lustre_filesystem() {
        let text = "UUID 1K-blocks Used Available Use% Mounted on\n\
            s-MDT0000_UUID 100 10 90 10% /s[MDT:0]\n\
            s-OST0000_UUID 1000 900 100 90% /s[OST:0]\n\
            OST0001             : inactive device\n\
            s-OST0002_UUID 1000 100 900 10% /s[OST:2]\n\n\
            filesystem_summary: 2000 1000 1000 50% /s\n";
        let u = lustre(text, None).unwrap();
        assert_eq!((u.osts_inactive, u.fullest_ost.clone()), (1, Some(("OST0000".to_owned(), 90.0))));
        let r = reading("s", "/s", Kind::Lustre, &u, Thresholds::default());
        assert_eq!(r.status, Status::Degraded);
        assert!(r.message.ends_with("; 1 OST(s) inactive"), "{}", r.message);
    }

    #[test]
    fn gpfs_reads_the_fs_total_and_inode_rows_in_kib() {
        let u = gpfs(MMDF).unwrap();
        assert_eq!(u.size_bytes, 3661677723648.0 * 1024.0);
        assert_eq!(u.avail_bytes, 481202021888.0 * 1024.0);
        assert_eq!(u.used_bytes, (3661677723648.0 - 481202021888.0) * 1024.0);
        assert_eq!(u.used_pct, 86.0);
        // 430741822 used of 1332164000 at most.
        assert_eq!(u.inodes_used_pct, Some(32.3));
        let r = reading("project", "/fs/project", Kind::Gpfs, &u, Thresholds::default());
        assert_eq!(r.status, Status::Ok);
        let tight = Thresholds { degraded_pct: 80.0, failed_pct: 95.0 };
        assert_eq!(reading("project", "/fs/project", Kind::Gpfs, &u, tight).status, Status::Degraded);
        let tighter = Thresholds { degraded_pct: 70.0, failed_pct: 86.0 };
        assert_eq!(reading("project", "/fs/project", Kind::Gpfs, &u, tighter).status, Status::Failed);
    }

    #[test]
    fn output_with_no_table_is_an_error_that_quotes_it() {
        assert_eq!(
            df("df: /glade: No such file or directory").unwrap_err().0,
            "printed no df table: \"df: /glade: No such file or directory\""
        );
        assert_eq!(lustre("", None).unwrap_err().0, "printed nothing");
        assert!(gpfs("mmdf: command failed").unwrap_err().0.starts_with("printed no mmdf fsTotal table"));
    }

    #[test]
    fn no_truncation_of_any_fixture_panics() {
        for text in [LFS, LFS_I, MMDF, DF, DF_I] {
            for cut in (0..text.len()).step_by(13).filter(|&c| text.is_char_boundary(c)) {
                let t = &text[..cut];
                let _ = (df(t), df_inodes(t), lustre(t, Some(t)), gpfs(t));
            }
        }
    }
}
