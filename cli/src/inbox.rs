//! The folder `casebridge serve` takes mail from, built so that nothing put
//! into it can stop the loop.
//!
//! Two layouts:
//!
//! - **A plain folder.** Every regular file whose name ends in `.eml` (any
//!   case) and does not start with `.` is a mail. Other names are left alone,
//!   so a writer can use them while it writes.
//! - **A maildir** (the folder has both `new/` and `cur/`). Every regular file
//!   in `new/` and `cur/` whose name does not start with `.` is a mail, as
//!   maildir defines it; `tmp/` is where deliveries are written and is never
//!   read.
//!
//! In both layouts ingested mail moves to `ROOT/done/` and mail that could not
//! be taken to `ROOT/failed/`, each next to a `NAME.reason` file with one line
//! saying why. In a maildir these folders sit beside `new/`, `cur/` and
//! `tmp/`: names without a leading dot are not maildir++ subfolders, so mail
//! clients and IMAP servers leave them alone, and the inbox never reads them.
//! A name already taken in either folder gets a suffix (`x-1.eml`, `x-2.eml`):
//! nothing is ever overwritten.
//!
//! **Write mail elsewhere and rename it in** — to a name ending in `.eml`, or
//! from maildir's `tmp/` to `new/`, as every maildir delivery agent does. A
//! rename is atomic, so the inbox only ever sees complete files. As a second
//! guard against writers that write in place, a file is taken only once it
//! has been quiet for a second: its modification time is at least a second
//! old, and its size and modification time are what the previous call of
//! [`Inbox::ready`] saw (a file first seen with an old time is taken at once,
//! and so is another file renamed in under a name seen before).
//! A file whose time is in the future is taken once it has been seen
//! unchanged for a second.
//!
//! Only regular files are read. A directory, a symbolic link (dangling or
//! not — a link could point anywhere, so it is never followed), a FIFO, a
//! socket or a device under a mail name is moved to `failed/` with its reason;
//! if even that fails it is skipped with a warning, logged once. An inbox
//! folder that cannot be listed is logged and yields nothing that round.

// The serve loop (cli/src/ops.rs) adopts this API as it is rewritten; until
// every item is called from the binary, unused ones are expected.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long a file must be quiet before it is taken.
const SETTLE: Duration = Duration::from_secs(1);
/// A reason file says why in one line; longer reasons are cut here.
const MAX_REASON_CHARS: usize = 500;
/// Suffixes tried for a name already taken in done/ or failed/.
const MAX_SUFFIX: u32 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("inbox {}: not a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("inbox {}: {source}", path.display())]
    Inspect { path: PathBuf, source: io::Error },
    #[error("cannot create the inbox folder {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("{name}: {what}, not a regular file (the inbox reads only regular files)")]
    NotRegular { name: String, what: &'static str },
    #[error("cannot read {name}: {source}")]
    Read { name: String, source: io::Error },
    #[error("cannot move {name} to {}: {source}", to.display())]
    Move { name: String, to: PathBuf, source: io::Error },
    #[error("{name} moved to {}, but its reason could not be written: {source}", to.display())]
    Reason { name: String, to: PathBuf, source: io::Error },
}

/// A mail ready to ingest, as [`Inbox::ready`] found it.
#[derive(Debug, Clone)]
pub struct InboxEntry {
    pub path: PathBuf,
    /// The file name, for logs and reason files (lossy if not UTF-8).
    pub name: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// What the previous call of `ready` saw of a file, and since when.
struct Seen {
    /// Device and inode: a new file under a known name is a new file.
    id: Option<(u64, u64)>,
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

pub struct Inbox {
    root: PathBuf,
    maildir: bool,
    done: PathBuf,
    failed: PathBuf,
    seen: HashMap<PathBuf, Seen>,
    /// The last warning per path: a stuck entry is polled several times a
    /// second, and is logged once (again only if its problem changes).
    warned: HashMap<PathBuf, String>,
}

impl Inbox {
    /// Opens (creating it if missing) a plain folder of `.eml` files, or a
    /// maildir (has `new/` and `cur/`), and creates `done/` and `failed/` in it.
    pub fn open(root: &Path) -> Result<Inbox, InboxError> {
        // Followed on purpose: the inbox folder itself may be a link to a folder.
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(InboxError::NotAFolder { path: root.to_path_buf() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(root).map_err(|source| InboxError::Create {
                path: root.to_path_buf(),
                source,
            })?,
            Err(source) => {
                return Err(InboxError::Inspect {
                    path: root.to_path_buf(),
                    source,
                })
            }
        }
        let maildir = root.join("new").is_dir() && root.join("cur").is_dir();
        let (done, failed) = (root.join("done"), root.join("failed"));
        for folder in [&done, &failed] {
            fs::create_dir_all(folder).map_err(|source| InboxError::Create {
                path: folder.clone(),
                source,
            })?;
        }
        Ok(Inbox {
            root: root.to_path_buf(),
            maildir,
            done,
            failed,
            seen: HashMap::new(),
            warned: HashMap::new(),
        })
    }

    pub fn is_maildir(&self) -> bool {
        self.maildir
    }

    /// The folders mail is taken from.
    fn mail_folders(&self) -> Vec<PathBuf> {
        if self.maildir {
            vec![self.root.join("new"), self.root.join("cur")]
        } else {
            vec![self.root.clone()]
        }
    }

    fn is_mail_name(&self, name: &str) -> bool {
        if name.starts_with('.') {
            return false;
        }
        self.maildir || name.to_ascii_lowercase().ends_with(".eml")
    }

    /// Mail ready to ingest, oldest first. Never fails: what cannot be
    /// listed or inspected is logged and skipped this round.
    pub fn ready(&mut self) -> Vec<InboxEntry> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut ready = Vec::new();
        // Every path looked at this round: state about others is dropped.
        let mut looked_at = HashSet::new();
        for folder in self.mail_folders() {
            looked_at.insert(folder.clone());
            let listing = match fs::read_dir(&folder) {
                Ok(listing) => listing,
                Err(e) => {
                    self.warn_once(&folder, format!("cannot list the inbox folder: {e}"));
                    continue;
                }
            };
            for item in listing {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        self.warn_once(&folder, format!("cannot list the inbox folder: {e}"));
                        continue;
                    }
                };
                let name = item.file_name().to_string_lossy().into_owned();
                if !self.is_mail_name(&name) {
                    continue;
                }
                let path = item.path();
                looked_at.insert(path.clone());
                // lstat: a link is judged as itself, never by what it points at.
                let meta = match fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    // Taken away since the listing: nothing to do.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.warn_once(&path, format!("cannot inspect: {e}"));
                        continue;
                    }
                };
                if !meta.file_type().is_file() {
                    self.set_aside(&path, &name, describe(&meta.file_type()));
                    continue;
                }
                let (size, modified) = (meta.len(), meta.modified().ok());
                if self.settled(&path, file_id(&meta), size, modified, now, wall) {
                    ready.push(InboxEntry {
                        path,
                        name,
                        size,
                        modified,
                    });
                }
            }
        }
        self.seen.retain(|path, _| looked_at.contains(path));
        self.warned.retain(|path, _| looked_at.contains(path));
        // Unknown times sort last; names break ties so the order is stable.
        ready.sort_by(|a, b| (a.modified.is_none(), a.modified, &a.name).cmp(&(b.modified.is_none(), b.modified, &b.name)));
        ready
    }

    /// Whether a file has been quiet for [`SETTLE`], remembering what was seen.
    fn settled(
        &mut self,
        path: &Path,
        id: Option<(u64, u64)>,
        size: u64,
        modified: Option<SystemTime>,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        // A time in the future gives an error here, and counts as not quiet.
        let quiet_by_time = modified.and_then(|m| wall.duration_since(m).ok()).is_some_and(|age| age >= SETTLE);
        let previous = self.seen.get(path).map(|seen| {
            let unchanged = seen.size == size && seen.modified == modified;
            (seen.id == id, unchanged, seen.since)
        });
        let ready = match previous {
            Some((true, true, since)) => return quiet_by_time || now.duration_since(since) >= SETTLE,
            // The same file, changed since the previous call: still being written.
            Some((true, false, _)) => false,
            // Seen for the first time, or another file under a known name
            // (the last one was moved out).
            _ => quiet_by_time,
        };
        self.seen.insert(
            path.to_path_buf(),
            Seen {
                id,
                size,
                modified,
                since: now,
            },
        );
        ready
    }

    /// Moves a non-regular entry to failed/, or warns (once) that it cannot.
    fn set_aside(&mut self, path: &Path, name: &str, what: &'static str) {
        let reason = format!("{what}, not a regular file: the inbox reads only regular files (write mail elsewhere, then rename it in)");
        match self.move_into(path, name, &self.failed, Some(&reason)) {
            Ok(to) => tracing::warn!(mail = %name, to = %to.display(), "{what} in the inbox moved to failed/"),
            Err(e) => self.warn_once(path, format!("{what} in the inbox, skipped: {e}")),
        }
    }

    fn warn_once(&mut self, path: &Path, problem: String) {
        if self.warned.get(path) != Some(&problem) {
            tracing::warn!(path = %path.display(), %problem, "inbox entry skipped");
            self.warned.insert(path.to_path_buf(), problem);
        }
    }

    /// Reads the mail. An entry that has vanished, cannot be read, or is no
    /// longer a regular file is an error, for the caller to pass to [`Inbox::failed`].
    pub fn read(&self, entry: &InboxEntry) -> Result<Vec<u8>, InboxError> {
        let read_error = |source| InboxError::Read {
            name: entry.name.clone(),
            source,
        };
        // Checked again: the entry may have been replaced since `ready`, and
        // opening a FIFO would block the loop. (A swap between this check and
        // the read is not guarded against: that takes someone racing on purpose.)
        let meta = fs::symlink_metadata(&entry.path).map_err(read_error)?;
        if !meta.file_type().is_file() {
            return Err(InboxError::NotRegular {
                name: entry.name.clone(),
                what: describe(&meta.file_type()),
            });
        }
        fs::read(&entry.path).map_err(read_error)
    }

    /// Moves the mail to done/ (a name already there gets a suffix).
    pub fn done(&self, entry: &InboxEntry) -> Result<(), InboxError> {
        self.move_into(&entry.path, &entry.name, &self.done, None).map(|_| ())
    }

    /// Moves the mail to failed/ and writes `failed/NAME.reason`: the reason
    /// on one line (control characters become spaces, cut at 500 characters).
    pub fn failed(&self, entry: &InboxEntry, reason: &str) -> Result<(), InboxError> {
        self.move_into(&entry.path, &entry.name, &self.failed, Some(reason)).map(|_| ())
    }

    /// Moves `path` into `folder` under a free name (and, with a reason, a
    /// free `NAME.reason` too); returns where it went.
    fn move_into(&self, path: &Path, name: &str, folder: &Path, reason: Option<&str>) -> Result<PathBuf, InboxError> {
        let file_name = path.file_name().map(OsStr::to_os_string).unwrap_or_else(|| name.into());
        let move_error = |to: PathBuf, source| InboxError::Move {
            name: name.to_string(),
            to,
            source,
        };
        let regular = fs::symlink_metadata(path)
            .map_err(|source| move_error(folder.to_path_buf(), source))?
            .file_type()
            .is_file();
        for n in 0..MAX_SUFFIX {
            let candidate = folder.join(with_suffix(&file_name, n));
            let reason_path = reason_path(&candidate);
            if reason.is_some() && exists(&reason_path) {
                continue;
            }
            match place(path, &candidate, regular) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(move_error(candidate, source)),
            }
            if let Some(reason) = reason {
                write_reason(&reason_path, reason).map_err(|source| InboxError::Reason {
                    name: name.to_string(),
                    to: candidate.clone(),
                    source,
                })?;
            }
            return Ok(candidate);
        }
        Err(move_error(
            folder.to_path_buf(),
            io::Error::new(io::ErrorKind::AlreadyExists, "every suffixed name is taken"),
        ))
    }
}

/// Moves `from` to `to`, failing with `AlreadyExists` rather than replace
/// anything (a plain rename would overwrite a file).
fn place(from: &Path, to: &Path, regular: bool) -> io::Result<()> {
    if regular {
        // A hard link cannot replace an existing name: no window in which a
        // second writer could be overwritten.
        match fs::hard_link(from, to) {
            Ok(()) => {
                if let Err(e) = fs::remove_file(from) {
                    // Never leave the mail in both places: it would be taken again.
                    let _ = fs::remove_file(to);
                    return Err(e);
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            // No hard links on this filesystem: rename below.
            Err(_) => {}
        }
    }
    // Directories, links, FIFOs (and files where links are not possible):
    // look, then rename. Only this process moves entries into done/ and failed/.
    if exists(to) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "name taken"));
    }
    fs::rename(from, to)
}

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

fn exists(path: &Path) -> bool {
    // Not Path::exists: that follows links, and a dangling link is a name taken.
    fs::symlink_metadata(path).is_ok()
}

/// `x.eml`, `x-1.eml`, `x-2.eml`…; names without `.eml` get `-N` appended.
fn with_suffix(name: &OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_os_string();
    }
    match name.to_str() {
        Some(text) if text.len() > 4 && text.to_ascii_lowercase().ends_with(".eml") => {
            // The last four bytes are ASCII, so this is a character boundary.
            let (stem, ext) = text.split_at(text.len() - 4);
            OsString::from(format!("{stem}-{n}{ext}"))
        }
        _ => {
            let mut suffixed = name.to_os_string();
            suffixed.push(format!("-{n}"));
            suffixed
        }
    }
}

fn reason_path(mail: &Path) -> PathBuf {
    let mut name = mail.file_name().map(OsStr::to_os_string).unwrap_or_default();
    name.push(".reason");
    mail.with_file_name(name)
}

fn write_reason(path: &Path, reason: &str) -> io::Result<()> {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    let mut file = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    writeln!(file, "{}", line.trim())
}

fn describe(kind: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("casebridge-inbox-{}-{label}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const MAIL: &[u8] = b"From: ann@customer.example\r\nSubject: Refund\r\n\r\nPlease refund order 1234.\r\n";

    /// A complete mail, as if renamed in a while ago.
    fn settled_mail(path: &Path, content: &[u8], age_secs: u64) {
        fs::write(path, content).unwrap();
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_secs)).unwrap();
    }

    fn names(entries: &[InboxEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn reason_of(inbox_root: &Path, name: &str) -> String {
        fs::read_to_string(inbox_root.join("failed").join(format!("{name}.reason"))).unwrap()
    }

    #[test]
    fn open_creates_done_and_failed_and_refuses_a_file() {
        let dir = TempDir::new("open");
        let root = dir.0.join("inbox");
        let inbox = Inbox::open(&root).unwrap();
        assert!(!inbox.is_maildir());
        assert!(root.join("done").is_dir() && root.join("failed").is_dir());
        let file = dir.0.join("not-a-folder");
        fs::write(&file, "x").unwrap();
        assert!(matches!(Inbox::open(&file), Err(InboxError::NotAFolder { .. })));
    }

    #[test]
    fn a_directory_named_eml_is_moved_to_failed_with_a_reason() {
        let dir = TempDir::new("dir");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        fs::create_dir(dir.0.join("x.eml")).unwrap();
        settled_mail(&dir.0.join("good.eml"), MAIL, 10);
        let ready = inbox.ready();
        assert_eq!(names(&ready), ["good.eml"], "the directory is not mail, the good mail still comes");
        assert!(!dir.0.join("x.eml").exists(), "moved out of the inbox");
        assert!(dir.0.join("failed/x.eml").is_dir());
        let reason = reason_of(&dir.0, "x.eml");
        assert!(reason.contains("a directory"), "{reason}");
        assert_eq!(reason.lines().count(), 1, "{reason}");
        // The next round has nothing new to say.
        assert_eq!(names(&inbox.ready()), ["good.eml"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_is_moved_to_failed() {
        let dir = TempDir::new("dangling");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        std::os::unix::fs::symlink(dir.0.join("nowhere"), dir.0.join("x.eml")).unwrap();
        assert!(inbox.ready().is_empty());
        let moved = fs::symlink_metadata(dir.0.join("failed/x.eml")).unwrap();
        assert!(moved.file_type().is_symlink(), "the link itself moved");
        assert!(fs::symlink_metadata(dir.0.join("x.eml")).is_err(), "and left the inbox");
        assert!(reason_of(&dir.0, "x.eml").contains("symbolic link"));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_real_file_is_not_followed() {
        let dir = TempDir::new("symlink");
        let elsewhere = TempDir::new("symlink-target");
        let target = elsewhere.0.join("secret.txt");
        fs::write(&target, MAIL).unwrap();
        let mut inbox = Inbox::open(&dir.0).unwrap();
        std::os::unix::fs::symlink(&target, dir.0.join("x.eml")).unwrap();
        assert!(inbox.ready().is_empty(), "a link is never read as mail");
        assert!(fs::symlink_metadata(dir.0.join("failed/x.eml")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), MAIL, "what it pointed at is untouched");
        assert!(reason_of(&dir.0, "x.eml").contains("symbolic link"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_and_a_socket_are_moved_to_failed_without_blocking() {
        let dir = TempDir::new("special");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        let status = std::process::Command::new("mkfifo").arg(dir.0.join("pipe.eml")).status().unwrap();
        assert!(status.success(), "mkfifo");
        let _socket = std::os::unix::net::UnixListener::bind(dir.0.join("sock.eml")).unwrap();
        // Opening the FIFO would block until a writer came: ready() must not.
        assert!(inbox.ready().is_empty());
        assert!(reason_of(&dir.0, "pipe.eml").contains("a FIFO"));
        assert!(reason_of(&dir.0, "sock.eml").contains("a socket"));
        assert!(fs::symlink_metadata(dir.0.join("pipe.eml")).is_err());
        assert!(fs::symlink_metadata(dir.0.join("sock.eml")).is_err());
    }

    // An unreadable file: chmod 000 would be the natural test, but the tests
    // run as root, for whom chmod 000 does not stop reading. The read error
    // path is exercised instead with a file removed between ready() and
    // read(), and with one replaced by a FIFO (which must fail, not block).
    #[test]
    fn a_file_removed_after_ready_is_a_read_error() {
        let dir = TempDir::new("vanished");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        settled_mail(&dir.0.join("gone.eml"), MAIL, 10);
        let ready = inbox.ready();
        assert_eq!(names(&ready), ["gone.eml"]);
        fs::remove_file(dir.0.join("gone.eml")).unwrap();
        match inbox.read(&ready[0]) {
            Err(InboxError::Read { name, source }) => {
                assert_eq!(name, "gone.eml");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        // Passed to failed(): an error to log, not a panic, and nothing appears.
        assert!(inbox.failed(&ready[0], "vanished").is_err());
        assert!(!dir.0.join("failed/gone.eml").exists());
        assert!(inbox.ready().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_replaced_by_a_fifo_after_ready_is_refused_then_failed() {
        let dir = TempDir::new("swapped");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        let path = dir.0.join("x.eml");
        settled_mail(&path, MAIL, 10);
        let ready = inbox.ready();
        assert_eq!(names(&ready), ["x.eml"]);
        fs::remove_file(&path).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        // In a thread: a read that opened the FIFO would hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        let entry = ready[0].clone();
        let root = dir.0.clone();
        std::thread::spawn(move || {
            let inbox = Inbox::open(&root).unwrap();
            let _ = tx.send(inbox.read(&entry).map_err(|e| e.to_string()));
        });
        let result = rx.recv_timeout(Duration::from_secs(5)).expect("read() blocked on a FIFO");
        let error = result.expect_err("a FIFO is not mail");
        assert!(error.contains("a FIFO") && error.contains("x.eml"), "{error}");
        inbox.failed(&ready[0], &error).unwrap();
        assert!(fs::symlink_metadata(dir.0.join("failed/x.eml")).is_ok());
        assert!(reason_of(&dir.0, "x.eml").contains("a FIFO"));
    }

    #[test]
    fn a_file_still_being_written_is_taken_only_when_complete() {
        let dir = TempDir::new("growing");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        let path = dir.0.join("big.eml");
        // Written in place, in two parts, within a second.
        fs::write(&path, &MAIL[..20]).unwrap();
        assert!(inbox.ready().is_empty(), "just written");
        std::thread::sleep(Duration::from_millis(300));
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&MAIL[20..])
            .unwrap();
        assert!(inbox.ready().is_empty(), "still growing");
        std::thread::sleep(Duration::from_millis(1100));
        let ready = inbox.ready();
        assert_eq!(names(&ready), ["big.eml"], "quiet for a second");
        assert_eq!(inbox.read(&ready[0]).unwrap(), MAIL, "and read whole");
    }

    #[test]
    fn a_size_change_between_calls_holds_a_file_even_with_an_old_time() {
        // A filesystem with coarse times (or a writer that sets them) can
        // show an old time on a growing file: the size seen last round counts.
        let dir = TempDir::new("coarse");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        let path = dir.0.join("x.eml");
        settled_mail(&path, &MAIL[..20], 3600);
        assert_eq!(
            names(&inbox.ready()),
            ["x.eml"],
            "an old complete-looking file is taken at first sight"
        );
        settled_mail(&path, MAIL, 3600);
        assert!(inbox.ready().is_empty(), "its size changed since the last call");
        assert_eq!(names(&inbox.ready()), ["x.eml"], "unchanged since the last call");
    }

    #[test]
    fn a_file_with_a_future_time_is_taken_once_seen_unchanged_for_a_second() {
        let dir = TempDir::new("future");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        let path = dir.0.join("x.eml");
        fs::write(&path, MAIL).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(3600)).unwrap();
        assert!(inbox.ready().is_empty());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(names(&inbox.ready()), ["x.eml"], "never wedged by a wrong clock");
    }

    #[test]
    fn a_name_taken_in_done_gets_a_suffix_and_nothing_is_overwritten() {
        let dir = TempDir::new("clash");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        fs::write(dir.0.join("done/x.eml"), "earlier mail").unwrap();
        for content in ["second", "third"] {
            settled_mail(&dir.0.join("x.eml"), content.as_bytes(), 10);
            let ready = inbox.ready();
            assert_eq!(names(&ready), ["x.eml"]);
            inbox.done(&ready[0]).unwrap();
            assert!(!dir.0.join("x.eml").exists());
        }
        assert_eq!(fs::read_to_string(dir.0.join("done/x.eml")).unwrap(), "earlier mail");
        assert_eq!(fs::read_to_string(dir.0.join("done/x-1.eml")).unwrap(), "second");
        assert_eq!(fs::read_to_string(dir.0.join("done/x-2.eml")).unwrap(), "third");
    }

    #[test]
    fn failed_writes_one_line_without_clobbering_an_older_reason() {
        let dir = TempDir::new("failed");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        // A reason left from an earlier mail whose mail an operator removed.
        fs::write(dir.0.join("failed/x.eml.reason"), "older reason\n").unwrap();
        settled_mail(&dir.0.join("x.eml"), MAIL, 10);
        let ready = inbox.ready();
        inbox.failed(&ready[0], "not a mail:\nline two\r\tend").unwrap();
        assert_eq!(fs::read_to_string(dir.0.join("failed/x.eml.reason")).unwrap(), "older reason\n");
        assert_eq!(fs::read(dir.0.join("failed/x-1.eml")).unwrap(), MAIL);
        let reason = reason_of(&dir.0, "x-1.eml");
        assert_eq!(reason, "not a mail: line two  end\n");
        let long = "y".repeat(5_000);
        settled_mail(&dir.0.join("z.eml"), MAIL, 10);
        let ready = inbox.ready();
        inbox.failed(&ready[0], &long).unwrap();
        assert_eq!(reason_of(&dir.0, "z.eml").trim_end().len(), MAX_REASON_CHARS);
    }

    #[test]
    fn a_maildir_takes_new_and_cur_and_nothing_else() {
        let dir = TempDir::new("maildir");
        for folder in ["new", "cur", "tmp"] {
            fs::create_dir(dir.0.join(folder)).unwrap();
        }
        settled_mail(&dir.0.join("new/1700000002.M1P1.host"), b"newer", 10);
        settled_mail(&dir.0.join("cur/1700000001.M2P2.host:2,S"), b"older", 20);
        settled_mail(&dir.0.join("cur/.hidden"), b"hidden", 30);
        settled_mail(&dir.0.join("tmp/1700000003.M3P3.host"), b"being delivered", 30);
        settled_mail(&dir.0.join("stray.eml"), b"not in new/ or cur/", 30);
        let mut inbox = Inbox::open(&dir.0).unwrap();
        assert!(inbox.is_maildir());
        let ready = inbox.ready();
        assert_eq!(names(&ready), ["1700000001.M2P2.host:2,S", "1700000002.M1P1.host"], "oldest first");
        assert_eq!(inbox.read(&ready[0]).unwrap(), b"older");
        assert_eq!((ready[0].size, ready[1].size), (5, 5));
        for entry in &ready {
            inbox.done(entry).unwrap();
        }
        assert_eq!(fs::read(dir.0.join("done/1700000002.M1P1.host")).unwrap(), b"newer");
        assert!(dir.0.join("done/1700000001.M2P2.host:2,S").exists());
        assert!(dir.0.join("failed").is_dir());
        assert!(dir.0.join("tmp/1700000003.M3P3.host").exists(), "tmp/ is never read");
        assert!(inbox.ready().is_empty(), "done/ is not read as mail either");
    }

    #[test]
    fn a_plain_folder_takes_only_eml_names() {
        let dir = TempDir::new("names");
        let mut inbox = Inbox::open(&dir.0).unwrap();
        for name in ["notes.txt", "x.eml.part", ".x.eml", "eml", "UPPER.EML", "mixed.Eml"] {
            settled_mail(&dir.0.join(name), MAIL, 10);
        }
        let mut taken = names(&inbox.ready()).into_iter().map(String::from).collect::<Vec<_>>();
        taken.sort();
        assert_eq!(taken, ["UPPER.EML", "mixed.Eml"]);
        for name in ["notes.txt", "x.eml.part", ".x.eml", "eml"] {
            assert!(dir.0.join(name).exists(), "{name} is left alone");
            assert!(!dir.0.join("failed").join(name).exists(), "{name} is not failed either");
        }
    }

    #[test]
    fn an_inbox_that_disappears_yields_nothing_and_does_not_panic() {
        let dir = TempDir::new("gone");
        let root = dir.0.join("inbox");
        let mut inbox = Inbox::open(&root).unwrap();
        settled_mail(&root.join("x.eml"), MAIL, 10);
        fs::remove_dir_all(&root).unwrap();
        assert!(inbox.ready().is_empty());
        assert!(inbox.ready().is_empty(), "and again (warned once)");
    }
}
