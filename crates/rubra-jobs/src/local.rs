//! Summing a local file on all cores, opened beneath the local root.

use rubra_csvsum::{Control, SumOptions, Summary};
use std::path::Path;

use crate::source::denied;
use crate::{JobError, RunControl, RunEnv, SourceError};

pub(crate) async fn run(
    relative: &Path,
    options: &SumOptions,
    env: &RunEnv,
    control: &RunControl,
) -> Result<Summary, JobError> {
    options.validate()?;
    let root = env
        .sources
        .local_root
        .clone()
        .ok_or(SourceError::LocalDisabled)?;
    let relative = relative.to_owned();
    let options = options.clone();
    let control = control.clone();
    let mmap = env.local_mmap;
    let threads = env.threads;
    let summary = tokio::task::spawn_blocking(move || {
        // Opened beneath the root's handle: the file may have been removed, or
        // it or a directory above it swapped for a link leading out, since the
        // job was checked; such an open fails here, with no window between a
        // check and the open.
        let file = root
            .open_file(&relative)
            .map_err(|d| JobError::Source(denied(d, &relative.display().to_string())))?;
        let counters = control.progress.restart();
        control
            .progress
            .set_total(file.metadata().map_err(csv_io)?.len());
        let c = Control {
            cancel: Some(control.cancel.as_ref()),
            progress: Some(&counters),
            threads,
            min_region: 0,
        };
        let summed = if mmap {
            rubra_csvsum::sum_open_file(file, &options, &c)
        } else {
            rubra_csvsum::sum_read_at(&file, &options, &c)
        };
        summed.map_err(JobError::from)
    })
    .await
    .map_err(|e| JobError::Internal(format!("parser task: {e}")))??;
    Ok(summary)
}

fn csv_io(e: std::io::Error) -> JobError {
    JobError::from(rubra_csvsum::CsvSumError::Io(e))
}
