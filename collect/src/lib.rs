//! Ready-made collectors for HPC centres, run as `sitrep collect <source>`.
//!
//! Each source's parsing is pure: the text a command printed goes in, [`Reading`]s come out, so
//! the recorded outputs under `collect/tests/fixtures/` test it with no process running.
//! - [`reading`]: what a source produces (one component's status, message, metrics, labels) and
//!   the tolerant number and name helpers every parser shares. Start here.
//! - [`pbs`]: PBS Pro and OpenPBS (`pbsnodes -a -F json`, `qstat -Q -f -F json`, `qstat -B -f -F json`).
//! - [`slurm`]: Slurm (`scontrol show nodes|partitions --json`, `squeue --json`, data_parser
//!   v0.0.37 to v0.0.44, and the `sinfo`/`squeue` text fallback).
//! - [`fs`]: filesystems (`df -P`, `lfs df`, `lfs df -i`, `mmdf <fs> -Y`).
//! - [`command`]: the thin layer that runs a command with a timeout and turns every way it can
//!   fail into a [`command::CommandError`] that names the command.
//!
//! - [`login`]: login nodes, by their SSH banner.
//! - [`jupyterhub`]: JupyterHub, from the pages of its REST API.
//!
//! The `sitrep` binary (services/src/collect.rs) holds the rest: the CLI and the config file,
//! the rounds, the JupyterHub HTTP request, and publishing over NATS or HTTP.

pub mod command;
pub mod fs;
pub mod jupyterhub;
pub mod login;
pub mod pbs;
pub mod reading;
pub mod slurm;

pub use reading::Reading;

#[cfg(test)]
mod tests {
    //! Every recorded output goes through every parser, whether or not it is that parser's
    //! input (a site that points a source at the wrong command, or a command that changed its
    //! output): none may panic, and what is not a parser's input must not pass for one.

    use std::path::Path;

    #[test]
    fn every_fixture_goes_through_every_parser_without_a_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hpc");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            files += 1;
            let _ = crate::pbs::readings(
                &crate::pbs::Outputs { nodes: Ok(text.clone()), queues: Ok(text.clone()), server: Ok(text.clone()) },
                &crate::pbs::Options::default(),
            );
            let _ = crate::slurm::readings(
                &crate::slurm::Outputs {
                    nodes: Ok(text.clone()),
                    partitions: Ok(text.clone()),
                    jobs: Ok(text.clone()),
                },
                &crate::slurm::Options::default(),
            );
            let _ = crate::slurm::readings_from_text(&Ok(text.clone()), &Ok(text.clone()), &Default::default());
            let _ = (crate::fs::df(&text), crate::fs::df_inodes(&text), crate::fs::lustre(&text, Some(&text)));
            let _ = (crate::fs::gpfs(&text), crate::jupyterhub::page(&text));
        }
        assert!(files >= 38, "{files} fixtures");
    }

    #[test]
    fn outputs_of_other_commands_are_not_taken_for_a_sources_input() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hpc");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        // Slurm's JSON is not PBS's: no queues, nodes or server come of it.
        let sdiag = read("slurm-sdiag-v0.0.41-rivosinc-24.05.5.json");
        assert!(crate::pbs::queues(&sdiag).is_err());
        assert!(crate::pbs::server(&sdiag).is_err());
        // A GPFS mmlsfs listing is not mmdf's capacity table, nor df's.
        let mmlsfs = read("fs-gpfs-mmlsfs-Y-treydock-gpfs_exporter.txt");
        assert!(crate::fs::gpfs(&mmlsfs).is_err());
        assert!(crate::fs::df(&mmlsfs).is_err());
        // PBS job lists (qstat -f, qstat -x -f) hold no "Queue" or "Server": no made-up queues.
        for jobs in
            ["pbs-qstat-f-json-alcf-polaris-2022.1.1-excerpt.json", "pbs-qstat-x-f-json-alcf-aurora-2022.1.7.json"]
        {
            assert_eq!(crate::pbs::queues(&read(jobs)).unwrap_or_default(), vec![], "{jobs}");
            assert!(crate::pbs::server(&read(jobs)).is_err(), "{jobs}");
        }
    }
}
