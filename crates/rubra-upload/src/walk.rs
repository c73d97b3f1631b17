//! Finding the images under a folder: a depth-first walk that sniffs each
//! regular file's first bytes, never follows symlinked folders, and never
//! visits a folder twice.

use crate::glob::Glob;
use crate::report::{Failure, SkipReason};
use crate::sniff::{ImageKind, SNIFF_LEN, sniff};
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An image file found by the walk.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where to read it.
    pub path: PathBuf,
    /// Path relative to the root, `/`-separated (for reports and globs).
    pub rel: String,
    /// Size when it was found.
    pub size: u64,
    /// Its format, from its first bytes.
    pub kind: ImageKind,
}

/// What to look at.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Descend into sub-folders.
    pub recursive: bool,
    /// If not empty, only files matching one of these.
    pub include: Vec<Glob>,
    /// Files matching one of these are left out.
    pub exclude: Vec<Glob>,
    /// Files larger than this are left out.
    pub max_size: Option<u64>,
}

/// Everything the walk found.
#[derive(Debug, Default)]
pub struct Found {
    /// Images to upload, sorted by path.
    pub images: Vec<Candidate>,
    /// Files that are not candidates, with the reason.
    pub skipped: Vec<(String, SkipReason)>,
    /// Files and folders that could not be read.
    pub failed: Vec<Failure>,
}

/// Walks `root` (a folder, or a single file).
pub fn walk(root: &Path, opts: &WalkOptions) -> std::io::Result<Found> {
    let meta = fs::metadata(root)?;
    let mut found = Found::default();
    if meta.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        consider_file(root.to_path_buf(), name, &meta, opts, &mut found);
        return Ok(found);
    }
    let mut visited = HashSet::new();
    visited.insert((meta.dev(), meta.ino()));
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd.collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let mut entries = match entries {
            Ok(v) => v,
            Err(e) => {
                found.failed.push(unreadable(display_rel(&rel_dir), &e));
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        // Push folders in reverse so they pop in name order.
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let path = entry.path();
            let lmeta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    found.failed.push(unreadable(rel, &e));
                    continue;
                }
            };
            if lmeta.file_type().is_symlink() {
                match fs::metadata(&path) {
                    Ok(m) if m.is_dir() => found.skipped.push((rel, SkipReason::SymlinkedDir)),
                    Ok(m) => consider_file(path, rel, &m, opts, &mut found),
                    Err(e) => found.failed.push(unreadable(rel, &e)),
                }
            } else if lmeta.is_dir() {
                if !opts.recursive {
                    continue;
                }
                if visited.insert((lmeta.dev(), lmeta.ino())) {
                    subdirs.push((path, rel));
                } else {
                    found.skipped.push((rel, SkipReason::AlreadyVisited));
                }
            } else {
                consider_file(path, rel, &lmeta, opts, &mut found);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    found.images.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

fn consider_file(
    path: PathBuf,
    rel: String,
    meta: &fs::Metadata,
    opts: &WalkOptions,
    found: &mut Found,
) {
    if !meta.is_file() {
        found.skipped.push((rel, SkipReason::NotRegularFile));
        return;
    }
    let included = opts.include.is_empty() || opts.include.iter().any(|g| g.matches(&rel));
    if !included || opts.exclude.iter().any(|g| g.matches(&rel)) {
        found.skipped.push((rel, SkipReason::Excluded));
        return;
    }
    if opts.max_size.is_some_and(|max| meta.len() > max) {
        found.skipped.push((rel, SkipReason::TooLarge));
        return;
    }
    let mut head = [0u8; SNIFF_LEN];
    let n = match fs::File::open(&path).and_then(|mut f| read_up_to(&mut f, &mut head)) {
        Ok(n) => n,
        Err(e) => {
            found.failed.push(unreadable(rel, &e));
            return;
        }
    };
    match sniff(&head[..n]) {
        Some(kind) => found.images.push(Candidate {
            path,
            rel,
            size: meta.len(),
            kind,
        }),
        None => found.skipped.push((rel, SkipReason::NotImage)),
    }
}

fn read_up_to(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn display_rel(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_owned()
    } else {
        rel.to_owned()
    }
}

pub(crate) fn unreadable(path: String, e: &std::io::Error) -> Failure {
    Failure {
        path,
        status: None,
        code: "unreadable".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n0000";

    #[test]
    fn finds_images_by_content_and_survives_symlink_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        fs::write(root.join("a/b/pic.txt"), PNG).expect("write");
        fs::write(root.join("a/notes.png"), b"not a png").expect("write");
        fs::write(root.join("top.jpg"), [0xFF, 0xD8, 0xFF, 0xE0]).expect("write");
        symlink(root, root.join("a/b/loop")).expect("symlink");
        symlink(root.join("nowhere"), root.join("dangling.png")).expect("symlink");

        let found = walk(
            root,
            &WalkOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .expect("walk");
        let rels: Vec<&str> = found.images.iter().map(|c| c.rel.as_str()).collect();
        assert_eq!(rels, ["a/b/pic.txt", "top.jpg"]);
        assert!(
            found
                .skipped
                .contains(&("a/notes.png".into(), SkipReason::NotImage))
        );
        assert!(
            found
                .skipped
                .contains(&("a/b/loop".into(), SkipReason::SymlinkedDir))
        );
        assert_eq!(found.failed.len(), 1);
        assert_eq!(found.failed[0].path, "dangling.png");

        let flat = walk(root, &WalkOptions::default()).expect("walk");
        assert_eq!(flat.images.len(), 1);
    }

    #[test]
    fn filters_apply_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("x.png"), PNG).expect("write");
        fs::write(root.join("y.png"), PNG).expect("write");
        fs::write(root.join("big.png"), [PNG, &[0u8; 100]].concat()).expect("write");
        let opts = WalkOptions {
            recursive: true,
            include: vec![Glob::new("*.png").expect("glob")],
            exclude: vec![Glob::new("y.*").expect("glob")],
            max_size: Some(50),
        };
        let found = walk(root, &opts).expect("walk");
        assert_eq!(found.images.len(), 1);
        assert!(
            found
                .skipped
                .contains(&("y.png".into(), SkipReason::Excluded))
        );
        assert!(
            found
                .skipped
                .contains(&("big.png".into(), SkipReason::TooLarge))
        );
    }
}
