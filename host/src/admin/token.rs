//! `admin_token = "generate"`: the token made at first start.
//!
//! Where it sits: called once by `start` when the config asks for a generated
//! token and its file does not exist yet. The token is 32 random bytes in hex,
//! kept in the store's directory (mode 600) so that later starts and the CLI
//! (`switchyard status`, ...) read the same one, and printed once, now.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Make the token, keep it in `file`, and print it once. A file that appeared
/// meanwhile (another process made it) is read instead.
pub fn make(file: &Path) -> anyhow::Result<String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make {} for the admin token", dir.display()))?;
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(mut f) => {
            f.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write the admin token to {}", file.display()))?;
            // Printed on its own, whatever the log level or format: this is the only time.
            eprintln!(
                "switchyard: made an admin token (`admin_token = \"generate\"`), kept in {} \
                 and shown only this once:\n\n    {token}\n",
                file.display()
            );
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the admin token in {}", file.display()))?;
            let token = text.trim().to_string();
            anyhow::ensure!(
                token.chars().count() >= crate::config::MIN_ADMIN_TOKEN_CHARS,
                "{} holds fewer than {} characters (another process writing it?): \
                 delete it, and a new token is made at the next start",
                file.display(),
                crate::config::MIN_ADMIN_TOKEN_CHARS
            );
            Ok(token)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot write the admin token to {}", file.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data/admin-token");
        let first = make(&file).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(make(&file).unwrap(), first, "made again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
