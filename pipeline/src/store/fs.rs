//! A local folder as a bucket.
//!
//! Writes go to a temporary file in the target's folder, are fsynced, then renamed (or,
//! for only-if-absent, hard-linked, which fails atomically when the name exists), and the
//! folder is fsynced: a reader never sees half a file, and a written file survives a
//! crash. Content type and cache control live in a sidecar under `.rendition/meta/`.
//! The ETag is a SHA-256 of the content, so it changes exactly when the bytes do; a file
//! over [`HASH_LIMIT`] (more than any default limit admits) gets one from its size, mtime
//! and inode instead, so that a HEAD never reads gigabytes.
//!
//! Files are opened with `O_NOFOLLOW | O_NONBLOCK` and their type is checked on the open
//! descriptor: a FIFO, socket or device swapped in under a key is refused (`InvalidKey`),
//! never waited on.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    content_type_for, validate_key, BlobStore, Object, ObjectMeta, PutOptions, PutOutcome,
    StoreError,
};

const META_DIR: &str = ".rendition/meta";

/// Largest file whose ETag is a hash of its content.
pub const HASH_LIMIT: u64 = 256 * 1024 * 1024;
const TMP_PREFIX: &str = ".rendition-tmp-";

#[derive(Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// ETags already computed, by path, valid while size and mtime are unchanged.
    etags: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    content_type: Option<String>,
    cache_control: Option<String>,
}

fn io_err(key: &str, err: std::io::Error) -> StoreError {
    match err.kind() {
        ErrorKind::NotFound => StoreError::NotFound {
            key: key.to_string(),
        },
        _ => StoreError::Unavailable(format!("{key}: {err}")),
    }
}

fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Opens the file behind `key` for reading without following a final symbolic link and
/// without blocking (a FIFO would otherwise block `open` until a writer comes), then
/// checks on the descriptor that it is a regular file. A folder is `NotFound` (no object
/// has that key); anything else that is not a regular file is `InvalidKey`. A key that
/// is a symbolic link is opened at the file it resolves to when that is inside `root`
/// (again without following), and refused otherwise.
fn open_regular(root: &Path, key: &str, path: &Path) -> Result<(File, fs::Metadata), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |path: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let file = match open(path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let real = fs::canonicalize(path).map_err(|e| io_err(key, e))?;
            if !real.starts_with(root) {
                return Err(StoreError::InvalidKey {
                    key: key.to_string(),
                    reason: "leads outside the store's root through a symbolic link",
                });
            }
            open(&real).map_err(|e| io_err(key, e))?
        }
        Err(e) => return Err(io_err(key, e)),
    };
    let md = file.metadata().map_err(|e| io_err(key, e))?;
    if md.is_dir() {
        return Err(StoreError::NotFound {
            key: key.to_string(),
        });
    }
    if !md.is_file() {
        return Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason: "not a regular file",
        });
    }
    Ok((file, md))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FsStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| StoreError::Other(format!("{}: {e}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(|e| StoreError::Other(format!("{}: {e}", root.display())))?;
        Ok(FsStore {
            inner: Arc::new(Inner {
                root,
                etags: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file behind a key. The key must be valid, and the path must not lead out of
    /// the root through a symbolic link (see `FsStore::check_inside`).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        let path = self.inner.root.join(key);
        self.check_inside(key, &path)?;
        Ok(path)
    }

    /// Refuses a path whose deepest existing part resolves (symbolic links followed) to
    /// somewhere outside the root: `originals/link.jpg -> /etc/passwd`, or a linked folder
    /// `derived/x -> /tmp`. Parts that do not exist yet are created as real folders and
    /// files under what was checked. (A link swapped in between this check and the
    /// operation is not caught: the threat here is hostile keys, not a hostile local user.)
    fn check_inside(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        let root = self.inner.root.as_path();
        for probe in path.ancestors() {
            if probe == root {
                break;
            }
            // Missing (or a dangling link, which nothing here writes through): look higher.
            let Ok(real) = fs::canonicalize(probe) else {
                continue;
            };
            if real.starts_with(root) {
                break;
            }
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                reason: "leads outside the store's root through a symbolic link",
            });
        }
        Ok(())
    }

    /// The key of a file under the root, if it is one a store could hold.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.inner.root).ok()?;
        let key = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()?
            .join("/");
        validate_key(&key).ok()?;
        (!key.split('/').any(|s| s.starts_with(TMP_PREFIX))).then_some(key)
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.inner.root.join(META_DIR).join(format!("{key}.json"))
    }

    fn read_sidecar(&self, key: &str) -> Sidecar {
        fs::read(self.sidecar_path(key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn meta_for(
        &self,
        key: &str,
        path: &Path,
        known: Option<&[u8]>,
    ) -> Result<ObjectMeta, StoreError> {
        let (mut file, md) = open_regular(&self.inner.root, key, path)?;
        let mtime = md.modified().map_err(|e| io_err(key, e))?;
        let size = md.len();
        let cached = {
            let etags = self.inner.etags.lock().expect("etag cache lock");
            etags
                .get(path)
                .filter(|(s, m, _)| *s == size && *m == mtime)
                .map(|(_, _, e)| e.clone())
        };
        let etag = match (cached, known) {
            (Some(etag), _) => etag,
            (None, Some(bytes)) if bytes.len() as u64 == size => etag_of(bytes),
            (None, _) if size > HASH_LIMIT => {
                use std::os::unix::fs::MetadataExt;
                format!(
                    "\"big-{:x}-{:x}-{:x}-{:x}\"",
                    size,
                    md.mtime(),
                    md.mtime_nsec(),
                    md.ino()
                )
            }
            (None, _) => {
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = file.read(&mut buf).map_err(|e| io_err(key, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                format!("\"{}\"", hex::encode(&hasher.finalize()[..16]))
            }
        };
        self.inner
            .etags
            .lock()
            .expect("etag cache lock")
            .insert(path.to_path_buf(), (size, mtime, etag.clone()));
        let sidecar = self.read_sidecar(key);
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag,
            version_id: None,
            content_type: sidecar
                .content_type
                .or_else(|| content_type_for(key).map(str::to_string)),
            cache_control: sidecar.cache_control,
            last_modified: Some(mtime),
        })
    }

    fn get_sync(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        let path = self.path_of(key)?;
        let (mut file, md) = open_regular(&self.inner.root, key, &path)?;
        if md.len() > max_bytes {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                limit: max_bytes,
            });
        }
        let mut body = Vec::with_capacity(md.len() as usize);
        // Read at most one byte past the limit, in case the file grew meanwhile.
        (&mut file)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| io_err(key, e))?;
        if body.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                limit: max_bytes,
            });
        }
        let meta = self.meta_for(key, &path, Some(&body))?;
        let meta = ObjectMeta {
            size: body.len() as u64,
            etag: if meta.size == body.len() as u64 {
                meta.etag
            } else {
                etag_of(&body)
            },
            ..meta
        };
        Ok(Object {
            meta,
            body: Bytes::from(body),
        })
    }

    fn head_sync(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path_of(key)?;
        match self.meta_for(key, &path, None) {
            Ok(meta) => Ok(Some(meta)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_temp(dir: &Path, key: &str, body: &[u8]) -> Result<PathBuf, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_err(key, e))?;
        let tmp = dir.join(format!("{TMP_PREFIX}{}", uuid::Uuid::new_v4()));
        let mut file = File::create(&tmp).map_err(|e| io_err(key, e))?;
        file.write_all(body)
            .and_then(|_| file.sync_all())
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_err(key, e)
            })?;
        Ok(tmp)
    }

    fn put_sync(
        &self,
        key: &str,
        body: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let path = self.path_of(key)?;
        let dir = path
            .parent()
            .expect("a key has a parent folder under the root")
            .to_path_buf();
        let tmp = Self::write_temp(&dir, key, body)?;
        let placed = if opts.if_absent {
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(PutOutcome::Written),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Ok(PutOutcome::AlreadyExists)
                }
                Err(e) => Err(io_err(key, e)),
            }
        } else {
            fs::rename(&tmp, &path)
                .map(|_| PutOutcome::Written)
                .map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    io_err(key, e)
                })
        }?;
        sync_dir(&dir).map_err(|e| io_err(key, e))?;
        let sidecar = Sidecar {
            content_type: opts.content_type.clone(),
            cache_control: opts.cache_control.clone(),
        };
        let side_path = self.sidecar_path(key);
        let side_dir = side_path
            .parent()
            .expect("sidecar has a folder")
            .to_path_buf();
        let side_tmp = Self::write_temp(
            &side_dir,
            key,
            &serde_json::to_vec(&sidecar).expect("sidecar serializes"),
        )?;
        fs::rename(&side_tmp, &side_path).map_err(|e| io_err(key, e))?;
        Ok(placed)
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let start_rel = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = if start_rel.is_empty() {
            self.inner.root.clone()
        } else {
            validate_key(start_rel)?;
            let start = self.inner.root.join(start_rel);
            self.check_inside(prefix, &start)?;
            start
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e)
                    if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory =>
                {
                    continue
                }
                Err(e) => return Err(io_err(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(prefix, e))?;
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(".rendition") {
                    continue;
                }
                let path = entry.path();
                let ft = entry.file_type().map_err(|e| io_err(prefix, e))?;
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() {
                    if let Some(key) = self.key_of(&path).filter(|k| k.starts_with(prefix)) {
                        match self.meta_for(&key, &path, None) {
                            Ok(meta) => out.push(meta),
                            // Deleted while listing: not there any more.
                            Err(StoreError::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete_sync(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(key, e)),
        }
        let _ = fs::remove_file(self.sidecar_path(key));
        self.inner
            .etags
            .lock()
            .expect("etag cache lock")
            .remove(&path);
        // Tidy empty folders up to (not including) the root.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.inner.root || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(format!("filesystem task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsStore {
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get_sync(&key, max_bytes)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.head_sync(&key)).await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        opts: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_sync(&key, &body, &opts)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        blocking(move || this.list_sync(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.delete_sync(&key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[tokio::test]
    async fn symbolic_links_out_of_the_root_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret.jpg"), b"secret").unwrap();
        let store = FsStore::new(tmp.path().join("root")).unwrap();
        let root = store.root().to_path_buf();
        fs::create_dir_all(root.join("originals")).unwrap();
        symlink(
            outside.join("secret.jpg"),
            root.join("originals/file-link.jpg"),
        )
        .unwrap();
        symlink(&outside, root.join("originals/dir-link")).unwrap();
        fs::write(root.join("originals/real.jpg"), b"inside").unwrap();
        symlink(
            root.join("originals/real.jpg"),
            root.join("originals/inside-link.jpg"),
        )
        .unwrap();

        let refused = |r: Result<(), StoreError>, what: &str| {
            assert!(
                matches!(r, Err(StoreError::InvalidKey { .. })),
                "{what}: {r:?}"
            );
        };
        for key in [
            "originals/file-link.jpg",
            "originals/dir-link/secret.jpg",
            "originals/dir-link/new.jpg",
            "originals/dir-link/deeper/new.jpg",
        ] {
            refused(store.get(key, 1 << 20).await.map(|_| ()), key);
            refused(store.head(key).await.map(|_| ()), key);
            for if_absent in [false, true] {
                let opts = PutOptions {
                    if_absent,
                    ..PutOptions::default()
                };
                let put = store.put(key, Bytes::from_static(b"evil"), opts).await;
                refused(put.map(|_| ()), key);
            }
            refused(store.delete(key).await, key);
        }
        refused(store.list("originals/dir-link/").await.map(|_| ()), "list");
        // Nothing outside was read into a listing, written or removed.
        let listed: Vec<String> = store
            .list("originals/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(listed, ["originals/real.jpg"]);
        let outside_files: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
        assert_eq!(outside_files.len(), 1);
        assert_eq!(fs::read(outside.join("secret.jpg")).unwrap(), b"secret");
        // A link that stays inside the root is an ordinary key.
        let obj = store
            .get("originals/inside-link.jpg", 1 << 20)
            .await
            .unwrap();
        assert_eq!(&obj.body[..], b"inside");
    }
}
