//! The secret key file that seals stored secrets: where it lives, making it on the embedded
//! default's first start (0600, beside `admin.key`), and reading it.

use rubra_store::SecretBox;
use std::path::{Path, PathBuf};

/// The key file's name in the data folder when `--secret-key-file` is not given.
pub const DEFAULT_NAME: &str = "secret.key";

/// Where the secret key file is, and whether a missing one is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyFile {
    /// The file.
    pub path: PathBuf,
    /// True for the default path in the data folder: made with a fresh key when missing. A
    /// file named with `--secret-key-file` must exist (a typo must not start a new key).
    pub create_if_missing: bool,
}

impl SecretKeyFile {
    /// Reads the keys, first making the file when it is missing and may be made (the flag
    /// says it was). The message of an error names the file, never a key.
    pub fn load(&self) -> Result<(SecretBox, bool), String> {
        let path = &self.path;
        let mut created = false;
        if self.create_if_missing && std::fs::symlink_metadata(path).is_err() {
            create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "secret key file created");
            created = true;
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the secret key file {}: {e} (give every process sharing the \
                 database the same file with --secret-key-file)",
                path.display()
            )
        })?;
        warn_if_others_can_read(path);
        let keys = SecretBox::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((keys, created))
    }
}

/// Makes the key file with one fresh key: written under a name of its own (0600), then linked
/// into place, which fails rather than replaces when another process starting together made
/// it first (then that one's key is used).
fn create(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let pending = dir.join(format!("{DEFAULT_NAME}.{}.new", rubra_store::random_id(8)));
    write_secret(&pending, &SecretBox::generate_line())?;
    let linked = std::fs::hard_link(&pending, path);
    let _ = std::fs::remove_file(&pending);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn warn_if_others_can_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the secret key file can be read by others than its owner; make it 0600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_path: &Path) {}

/// Writes `secret` to a new file at `path` that only the owner can read (0600).
///
/// Whatever was at `path` is removed first without following it, and the file is then
/// created exclusively (`O_CREAT | O_EXCL`, which never follows a link): a symbolic link
/// planted there cannot redirect the key into another file, and a file left with a wider mode
/// is replaced, not reused.
pub(crate) fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        // The umask may only narrow the mode; set it exactly anyway.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{secret}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_file_is_made_once_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretKeyFile {
            path: dir.path().join(DEFAULT_NAME),
            create_if_missing: true,
        };
        let (first, created) = file.load().unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = file.load().unwrap();
        assert!(!created);
        assert_eq!(first.key_ids(), again.key_ids());
        // Nothing left behind but the file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretKeyFile {
            path: dir.path().join("typo.key"),
            create_if_missing: false,
        };
        let err = file.load().unwrap_err();
        assert!(err.contains("typo.key"), "{err}");
        assert!(!file.path.exists());
    }
}
