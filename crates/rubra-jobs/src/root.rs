//! The folder that local job files are confined to, held open as a capability.
//!
//! The root is opened once with ambient authority; every job file is then
//! opened *beneath* that handle with `cap-std`, which resolves the relative
//! path race-free (`openat2` with `RESOLVE_BENEATH` on Linux, its own
//! component-by-component resolution elsewhere). A `..`, an absolute path or a
//! symbolic link that leads out of the root fails the open itself, even when a
//! directory is swapped for such a link after the job was checked, so there is
//! no check-then-open window.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

/// An open handle on the local job root. Cheap to clone (clones share the
/// handle).
#[derive(Clone, Debug)]
pub struct LocalRoot {
    dir: Arc<Dir>,
    path: PathBuf,
}

/// How a confined open failed.
pub(crate) enum Denied {
    /// The path does not exist, or a link in it dangles or loops.
    NotFound,
    /// The path leads out of the root (`..`, absolute, or through a link).
    Outside,
    /// Not a regular file (a directory, a pipe, a device).
    NotAFile,
    /// The operating system refused to read it (permissions).
    Unreadable,
}

impl LocalRoot {
    /// Opens the directory `path` (resolved to its canonical form first).
    pub fn open(path: &Path) -> io::Result<Self> {
        let path = path.canonicalize()?;
        let dir = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(Self {
            dir: Arc::new(dir),
            path,
        })
    }

    /// The canonical path the root was opened at (for logs; files are never
    /// opened through it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `relative` names a regular file beneath the root, without
    /// opening it (so a pipe is never opened, which could block).
    pub(crate) fn check(&self, relative: &Path) -> Result<(), Denied> {
        match self.dir.metadata(relative) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Denied::NotAFile),
            Err(e) => Err(denied(&e)),
        }
    }

    /// Opens `relative` for reading, beneath the root, and checks that what
    /// was opened is a regular file.
    pub(crate) fn open_file(&self, relative: &Path) -> Result<std::fs::File, Denied> {
        self.check(relative)?;
        let mut options = OpenOptions::new();
        options.read(true);
        // Non-blocking, so that a FIFO swapped in after the check does not hang the open
        // waiting for a writer (reads of a regular file are unaffected by the flag).
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let file = self
            .dir
            .open_with(relative, &options)
            .map_err(|e| denied(&e))?
            .into_std();
        // The check above ran on the path; this one on what was opened.
        match file.metadata() {
            Ok(m) if m.is_file() => Ok(file),
            Ok(_) => Err(Denied::NotAFile),
            Err(e) => Err(denied(&e)),
        }
    }
}

fn denied(e: &io::Error) -> Denied {
    match e.kind() {
        // cap-std reports an escape as PermissionDenied without an OS error
        // number (it maps openat2's EXDEV, or finds it itself); a real EACCES
        // carries one.
        io::ErrorKind::PermissionDenied if e.raw_os_error().is_none() => Denied::Outside,
        io::ErrorKind::PermissionDenied => Denied::Unreadable,
        _ => Denied::NotFound,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_fifo_swapped_in_after_the_check_never_hangs_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, fifo) = (dir.path().join("data.csv"), dir.path().join("fifo"));
        std::fs::write(&file, "a\n1\n").expect("file");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let root = LocalRoot::open(dir.path()).expect("root");
        let stop = Arc::new(AtomicBool::new(false));
        // Swaps `data.csv` between the regular file and the FIFO as fast as it can.
        let swapper = {
            let (stop, dir) = (stop.clone(), dir.path().to_owned());
            std::thread::spawn(move || {
                let (csv, tmp) = (dir.join("data.csv"), dir.join("tmp"));
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::rename(dir.join("fifo"), &tmp);
                    let _ = std::fs::rename(&csv, dir.join("fifo"));
                    let _ = std::fs::rename(&tmp, &csv);
                }
            })
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..5_000 {
                // Either a regular file or a refusal; never a hang on the FIFO.
                let _ = root.open_file(Path::new("data.csv"));
            }
            let _ = done_tx.send(());
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        stop.store(true, Ordering::Relaxed);
        let _ = swapper.join();
        // Unblock an open stuck on the FIFO (old behaviour) so the test process can end.
        if !finished {
            for name in ["data.csv", "fifo", "tmp"] {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags_nonblock()
                    .open(dir.path().join(name));
            }
        }
        assert!(
            finished,
            "an open blocked on a FIFO swapped in after the check"
        );
    }

    trait NonBlock {
        fn custom_flags_nonblock(&mut self) -> &mut Self;
    }

    impl NonBlock for std::fs::OpenOptions {
        fn custom_flags_nonblock(&mut self) -> &mut Self {
            std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
        }
    }
}
