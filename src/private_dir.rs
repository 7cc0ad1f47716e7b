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
    use std::process::Command;

    /// Issue 31, item 8: `serve --data-dir ./sim` in a work tree left the private key untracked
    /// and not ignored. Now git, asked, sees nothing of the keys or the store.
    #[test]
    fn keys_and_store_made_inside_a_work_tree_are_ignored_by_git() {
        let tree = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| Command::new("git").args(args).current_dir(tree.path()).output().expect("git runs");
        assert!(git(&["init", "-q"]).status.success());
        let data = tree.path().join("sim");
        crate::receipts::ReceiptKeys::load_or_create(&data.join("receipt-keys")).unwrap();
        crate::store::sqlite::SqliteStore::open(&data).unwrap();
        assert!(std::fs::read_dir(data.join("receipt-keys")).unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "pk8")));
        let status = git(&["status", "--porcelain", "--untracked-files=all"]);
        assert_eq!(String::from_utf8_lossy(&status.stdout), "", "git sees nothing to add");
        // A directory that existed keeps what its owner decided: no .gitignore is forced on it.
        let own = tree.path().join("own");
        std::fs::create_dir(&own).unwrap();
        super::create(&own).unwrap();
        assert!(!own.join(".gitignore").exists());
    }
}
