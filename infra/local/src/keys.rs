//! Keys the local stack keeps in a file, so that every process of it signs with the same one
//! (the stand-ins' SendGrid key, the development tokens' key).

use std::path::{Path, PathBuf};

/// The key in `file`, made with `generate` and kept there if there is none yet. Processes
/// that start together agree: the first one's key is linked into place, the others read it.
pub fn kept(
    file: &Path,
    generate: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Vec<u8>> {
    match std::fs::read(file) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = generate()?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let aside = file.with_extension(format!("{}.new", uuid::Uuid::new_v4().simple()));
    std::fs::write(&aside, &key)?;
    let linked = std::fs::hard_link(&aside, file);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // whoever linked first, the file holds the key
    std::fs::read(file)
}

/// Where the local stack keeps a key of this name.
pub fn file(name: &str) -> PathBuf {
    std::env::temp_dir().join("herald-local").join(name)
}
