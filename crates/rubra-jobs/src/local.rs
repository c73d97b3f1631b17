//! Summing a local file on all cores, after checking again that it is still
//! inside the local root.

use rubra_csvsum::{Control, SumOptions, Summary};
use std::path::Path;

use crate::source::{Resolve, resolve_inside};
use crate::{JobError, RunControl, RunEnv, SourceError};

pub(crate) async fn run(
    path: &Path,
    root: &Path,
    options: &SumOptions,
    env: &RunEnv,
    control: &RunControl,
) -> Result<Summary, JobError> {
    options.validate()?;
    // The file may have been removed or swapped for a link since the job was
    // submitted: resolve it again.
    let shown = path.display().to_string();
    let relative = path.strip_prefix(root).unwrap_or(path);
    let path = resolve_inside(root, relative).map_err(|e| match e {
        Resolve::NotFound => SourceError::NotFound { source_str: shown },
        Resolve::NotAFile => SourceError::NotAFile { source_str: shown },
        Resolve::Outside => SourceError::OutsideRoot {
            source_str: shown,
            reason: "it resolves outside the root through a link",
        },
    })?;
    let options = options.clone();
    let control = control.clone();
    let mmap = env.local_mmap;
    let threads = env.threads;
    let summary = tokio::task::spawn_blocking(move || {
        let counters = control.progress.restart();
        let file = std::fs::File::open(&path)?;
        control.progress.set_total(file.metadata()?.len());
        let c = Control {
            cancel: Some(control.cancel.as_ref()),
            progress: Some(&counters),
            threads,
            min_region: 0,
        };
        if mmap {
            drop(file);
            rubra_csvsum::sum_file(&path, &options, &c)
        } else {
            rubra_csvsum::sum_read_at(&file, &options, &c)
        }
    })
    .await
    .map_err(|e| JobError::Internal(format!("parser task: {e}")))??;
    Ok(summary)
}
