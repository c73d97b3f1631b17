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
        let file = self
            .dir
            .open_with(relative, OpenOptions::new().read(true))
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
