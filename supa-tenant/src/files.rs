//! Private files in the data dir (master key, tokens, passwords): written
//! with mode 0600, and refused when someone else could read them.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::Error;

/// The trimmed contents of `path`, or `None` when it does not exist.
/// A file readable by group or others is an error: its secret may be out.
pub(crate) fn read_private(path: &Path) -> Result<Option<String>, Error> {
    let contents = match fs::read_to_string(path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&format!("read {}", path.display()), e)),
    };
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .map_err(|e| Error::io(&format!("stat {}", path.display()), e))?;
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{} is readable by other users (mode {mode:o}); chmod 600 it",
            path.display()
        )));
    }
    Ok(Some(contents.trim().to_owned()))
}

/// Writes `contents` to `path` with mode 0600 (replacing the file).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(&format!("write {}", path.display()), e))?;
    // `mode` only applies to new files; an existing one is tightened too.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(contents.as_bytes()))
        .map_err(|e| Error::io(&format!("write {}", path.display()), e))
}

/// `n` random bytes from the OS CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}
