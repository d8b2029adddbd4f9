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
