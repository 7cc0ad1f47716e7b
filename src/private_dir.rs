//! Directories whose files must never be committed: the receipt-signing keys and the embedded
//! store (every document accepted). A directory the gateway creates for them gets a
//! `.gitignore` of `*`, as Python's `venv` does, so that `serve --data-dir ./sim` inside a
//! work tree leaves nothing that one `git add .` would take.

use std::path::Path;

/// What the `.gitignore` says: everything here, itself included.
const IGNORE_ALL: &str = "# Written by Ventanilla: receipt-signing keys and stored documents never belong in a repository.\n*\n";

/// Writes `dir/.gitignore` ignoring everything, unless the directory already has one.
pub fn keep_out_of_git(dir: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).open(dir.join(".gitignore")) {
        Ok(mut file) => std::io::Write::write_all(&mut file, IGNORE_ALL.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` with its parents; the outermost directory this created is kept out of git
/// (one that existed keeps what its owner decided).
pub fn create(dir: &Path) -> std::io::Result<()> {
    let outermost_new = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).last().map(Path::to_owned);
    std::fs::create_dir_all(dir)?;
    match outermost_new {
        Some(new) => keep_out_of_git(&new),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_directory_it_creates_ignores_everything_and_one_that_existed_is_left_as_it_was() {
        let tree = tempfile::tempdir().unwrap();
        let data = tree.path().join("sim/receipt-keys");
        super::create(&data).unwrap();
        let ignore = std::fs::read_to_string(tree.path().join("sim/.gitignore")).unwrap();
        assert_eq!(ignore.lines().last(), Some("*"), "the outermost directory it made: {ignore}");
        assert!(!data.join(".gitignore").exists(), "covered by the one above");
        let own = tree.path().join("own");
        std::fs::create_dir(&own).unwrap();
        super::create(&own).unwrap();
        assert!(!own.join(".gitignore").exists(), "a directory that existed keeps what its owner decided");
    }
}
