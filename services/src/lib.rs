//! # sitrep-services
//!
//! The `sitrep` binary's commands and the long-running services behind them. Start at [`cli`]
//! for the commands, then [`app`] for how the parts are put together.
//!
//! - [`cli`]: the command line (`run`, `ingest`, `project`, `web`, `migrate`, `replay`, `verify`,
//!   `keys`, `users`, `archive`, `collect`, `simulate`, `bench`, `demo`).
//! - [`admin`]: `sitrep keys` and `sitrep users`.
//! - [`collect`]: `sitrep collect <source>`, the ready-made collectors (PBS, Slurm, filesystems,
//!   login nodes, JupyterHub) around the parsers of `sitrep-collect`.
//! - [`archive`]: `sitrep archive`, old component events moved to checksummed files.
//! - [`app`]: starts ingest, projections and web, alone or together, and stops them cleanly.
//! - [`alerting`]: the alert clock, the bus publisher, the notification planner and
//!   delivery to receivers.
//! - [`ingest`]: the command side: NATS batches → aggregates → one transaction → ack.
//! - [`replay`]: `sitrep replay` and `sitrep verify`, read models rebuilt beside the live ones.
//! - [`selfwatch`]: sitrep's reports on itself, as the system `sitrep`.
//! - [`simulate`]: realistic collector traffic for demos and load.
//! - [`bench`]: `sitrep bench`, measurements with same-run ratios and `BENCH` lines.

pub mod admin;
pub mod alerting;
pub mod app;
pub mod archive;
pub mod bench;
pub mod cli;
pub mod collect;
pub mod ingest;
pub mod replay;
pub mod report;
pub mod rules;
pub mod selfwatch;
pub mod simulate;
