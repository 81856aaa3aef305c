//! `pulsebase-wal`: SQLite's default VFS with one change, for the writer connection only: the
//! frames a transaction appends to the WAL are gathered in memory and written when its commit
//! frame is complete, one `pwrite` per 124 KiB, instead of two `pwrite`s per frame (a 24-byte
//! header, then the page). A group commit of a few dozen WebSocket mutations appended about 95
//! frames; the two system calls per frame were a fifth of the Committer's time (BENCHMARKS.md,
//! "Gathered WAL writes").
//!
//! Why this is safe: readers (other connections, other processes) learn of new frames only
//! from the wal-index header that SQLite publishes after `walFrames` returns, and `walFrames`
//! writes the commit frame (the one whose header carries the database size) last among the
//! frames it appends. This file is flushed when that frame's page has been appended, so every
//! frame a published header covers is in the file, and a failed flush is the commit's own
//! write error (SQLite publishes nothing; the Committer rolls the batch back). Every other
//! path writes through:
//! - a write that is not an append at the end of what was written (SQLite rewriting a frame
//!   in place or fixing checksums, a new log after a rolled-back spill) first flushes what is
//!   gathered, then goes straight to the file;
//! - after a commit frame or a sync, appends are written through until the next
//!   transaction's first frame: the padding frames SQLite adds after a commit on disks
//!   without power-safe overwrite (copies of the commit frame, published with it, with a sync
//!   where one crosses a sector boundary) never wait in memory;
//! - a read, sync, truncate, size query, file control or close of the WAL flushes first, so
//!   the writer never reads back a frame it has not written, and a sync covers every frame.
//!
//! Nothing else changes: the main database file, the journal and the shared-memory index are
//! SQLite's own files and methods (a non-WAL file is opened straight into the memory SQLite
//! gives, with the default VFS's methods), and locking is the default VFS's.
//!
//! This module is the only `unsafe` code of the project (tidy checks it): the VFS interface
//! is C's.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::error::StorageError;

/// The name connections open with to use this VFS.
pub(crate) const NAME: &str = "pulsebase-wal";
const NAME_C: &CStr = c"pulsebase-wal";

/// Gathered bytes past this are written out even before the commit frame (a large import),
/// so the buffer never holds much more than this.
const FLUSH_AT: usize = 4 << 20;
/// A buffer that grew past this (a large transaction) is given back after its flush.
const KEEP_CAPACITY: usize = 1 << 20;
/// The most one write of the default unix VFS may ask for: it writes `len & 0x1ffff` bytes
/// per call (sqlite3.c, `seekAndWriteFd`), so larger writes go in whole pages below that.
const MAX_WRITE: usize = 0x1ffff & !4095;
/// Size of a WAL frame header and of the WAL file header (SQLite's file format).
const FRAME_HEADER: usize = 24;
const WAL_HEADER: usize = 32;

/// The default VFS this one wraps, found once.
struct DefaultVfs(*mut ffi::sqlite3_vfs);
// SAFETY: SQLite's VFS objects are immutable once registered and are used from any thread.
unsafe impl Send for DefaultVfs {}
unsafe impl Sync for DefaultVfs {}

static DEFAULT: OnceLock<Result<DefaultVfs, String>> = OnceLock::new();

/// Registers the VFS (once per process) and returns its name.
pub(crate) fn register() -> Result<&'static str, StorageError> {
    let registered = DEFAULT.get_or_init(|| {
        // SAFETY: a null name asks SQLite for its default VFS; it initializes itself first.
        let default = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
        if default.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        // SAFETY: `default` points at a registered VFS, which SQLite never frees.
        let mut vfs = unsafe { *default };
        let default_size = vfs.szOsFile as usize;
        vfs.szOsFile = c_int::try_from(inner_offset() + default_size)
            .map_err(|_| "the default VFS's file object is too large".to_string())?;
        vfs.pNext = ptr::null_mut();
        vfs.zName = NAME_C.as_ptr();
        vfs.xOpen = Some(open);
        // Every other entry (and `pAppData`, which the default methods read) stays the
        // default VFS's own. Registered VFS objects live as long as the process.
        let vfs = Box::leak(Box::new(vfs));
        // SAFETY: `vfs` is a complete VFS that outlives every connection; 0 = not the default.
        let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
        if rc != ffi::SQLITE_OK {
            return Err(format!(
                "registering the {NAME} VFS failed (SQLite code {rc})"
            ));
        }
        Ok(DefaultVfs(default))
    });
    match registered {
        Ok(_) => Ok(NAME),
        Err(e) => Err(StorageError::Vfs(e.clone())),
    }
}

/// A WAL file of this VFS: SQLite's file header, the gathered frames, then the default VFS's
/// own file object at [`inner_offset`].
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    gathered: Gathered,
}

/// Where the default VFS's file object starts inside a [`WalFile`] (16-byte aligned).
const fn inner_offset() -> usize {
    std::mem::size_of::<WalFile>().div_ceil(16) * 16
}

/// Appended frames not yet written, and where the file ends.
struct Gathered {
    bytes: Vec<u8>,
    /// File offset of `bytes[0]`.
    start: i64,
    /// End of everything written or gathered: an append starts here.
    end: i64,
    /// The last gathered write was a commit frame's header: its page comes next, then the
    /// flush.
    commit_header: bool,
    /// A commit frame was flushed and no later transaction has begun: write through.
    after_commit: bool,
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(Ok(DefaultVfs(default))) = DEFAULT.get() else {
        return ffi::SQLITE_ERROR;
    };
    let default = *default;
    // SAFETY: `default` is the registered default VFS, whose `xOpen` is always set.
    let Some(default_open) = (unsafe { (*default).xOpen }) else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // SAFETY: SQLite gave `file` our `szOsFile` bytes, more than the default VFS needs;
        // the file is then the default VFS's in every respect.
        return unsafe { default_open(default, name, file, flags, out_flags) };
    }
    let inner = inner(file);
    // SAFETY: as above; the default VFS's object lives at `inner`, inside our allocation.
    let rc = unsafe { default_open(default, name, inner, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        // SAFETY: `file` is ours to initialize; a null method table tells SQLite not to close.
        unsafe { (*file).pMethods = ptr::null() };
        return rc;
    }
    let wal = file.cast::<WalFile>();
    // SAFETY: `wal` is our allocation, uninitialized until now; `xClose` drops it.
    unsafe {
        ptr::write(
            ptr::addr_of_mut!((*wal).gathered),
            Gathered {
                bytes: Vec::new(),
                start: 0,
                end: 0,
                commit_header: false,
                after_commit: false,
            },
        );
        (*file).pMethods = &WAL_METHODS;
    }
    ffi::SQLITE_OK
}

fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>()
        .wrapping_add(inner_offset())
        .cast::<ffi::sqlite3_file>()
}

/// The default VFS's methods of a WAL file's inner object.
///
/// # Safety
/// `file` is a [`WalFile`] opened by [`open`].
unsafe fn inner_methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: the default VFS set its method table when it opened the inner object, and
    // method tables are static.
    unsafe { &*(*inner(file)).pMethods }
}

/// # Safety
/// `file` is a [`WalFile`] opened by [`open`] and not closed; SQLite uses a file from one
/// thread at a time.
unsafe fn gathered<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Gathered {
    // SAFETY: per the contract.
    unsafe { &mut (*file.cast::<WalFile>()).gathered }
}

/// Writes what is gathered. On failure the bytes are dropped and the end moves back to
/// where they began: SQLite has the error and rewrites those frames if it commits again.
///
/// # Safety
/// `inner` is the open inner object of the [`WalFile`] that holds `g`.
unsafe fn flush(g: &mut Gathered, inner: *mut ffi::sqlite3_file) -> c_int {
    g.commit_header = false;
    if g.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let mut rc = ffi::SQLITE_OK;
    let mut at = g.start;
    for chunk in g.bytes.chunks(MAX_WRITE) {
        // SAFETY: per the contract.
        rc = unsafe { write_inner(inner, chunk, at) };
        if rc != ffi::SQLITE_OK {
            break;
        }
        at += chunk.len() as i64;
    }
    if rc != ffi::SQLITE_OK {
        g.end = g.start;
    }
    g.bytes.clear();
    if g.bytes.capacity() > KEEP_CAPACITY {
        g.bytes = Vec::new();
    }
    rc
}

/// Writes `bytes` (fewer than `c_int::MAX`) at `offset` with the default VFS.
///
/// # Safety
/// `inner` is an open file object of the default VFS.
unsafe fn write_inner(inner: *mut ffi::sqlite3_file, bytes: &[u8], offset: i64) -> c_int {
    let Ok(len) = c_int::try_from(bytes.len()) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: the default VFS set its (static) method table when it opened `inner`.
    match unsafe { (*(*inner).pMethods).xWrite } {
        // SAFETY: `bytes` is valid for `len` bytes; `inner` is open.
        Some(write) => unsafe { write(inner, bytes.as_ptr().cast(), len, offset) },
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    let data = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    // SAFETY: SQLite calls this on a file `open` made.
    let g = unsafe { gathered(file) };
    let header = (len == FRAME_HEADER).then(|| data[4..8] != [0; 4]);
    let real = inner(file);
    if offset == 0 && len == WAL_HEADER {
        // A new log starts: frames follow from here, over whatever the file held.
        let rc = unsafe { flush(g, real) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        g.end = 0;
        g.after_commit = false;
    }
    let appends = if g.bytes.is_empty() {
        offset == g.end
    } else {
        offset == g.start + g.bytes.len() as i64
    };
    if appends && header == Some(false) {
        // A frame without the commit mark appended: a transaction's frames follow.
        g.after_commit = false;
    }
    if !appends || g.after_commit {
        let rc = unsafe { flush(g, real) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: SQLite's own arguments, passed on.
        let rc = unsafe { write_inner(real, data, offset) };
        if rc == ffi::SQLITE_OK {
            g.end = g.end.max(offset + i64::from(amount));
        }
        return rc;
    }
    if g.bytes.is_empty() {
        g.start = offset;
    }
    g.bytes.extend_from_slice(data);
    g.end = g.start + g.bytes.len() as i64;
    let commit_page = std::mem::replace(&mut g.commit_header, header == Some(true));
    if commit_page {
        g.after_commit = true;
        return unsafe { flush(g, real) };
    }
    if g.bytes.len() >= FLUSH_AT && !g.commit_header {
        return unsafe { flush(g, real) };
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file it opened, once.
    let flushed = unsafe { flush_file(file) };
    let closed = match unsafe { inner_methods(file) }.xClose {
        Some(close) => unsafe { close(inner(file)) },
        None => ffi::SQLITE_OK,
    };
    // SAFETY: `open` wrote this field; nothing uses it after close.
    unsafe { ptr::drop_in_place(ptr::addr_of_mut!((*file.cast::<WalFile>()).gathered)) };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Writes a WAL file's gathered frames (see [`flush`]).
///
/// # Safety
/// `file` is a [`WalFile`] opened by [`open`] and not closed.
unsafe fn flush_file(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract; `inner` lies outside the gathered state.
    unsafe { flush(gathered(file), inner(file)) }
}

unsafe extern "C" fn wal_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let rc = unsafe { flush_file(file) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let rc = match unsafe { inner_methods(file) }.xTruncate {
        Some(truncate) => unsafe { truncate(inner(file), size) },
        None => ffi::SQLITE_IOERR_TRUNCATE,
    };
    let g = unsafe { gathered(file) };
    g.end = g.end.min(size);
    rc
}

unsafe extern "C" fn wal_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let rc = unsafe { flush_file(file) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // SQLite syncs in the middle of a frame only while padding after a commit: what follows
    // is published with that commit, so it is written through.
    unsafe { gathered(file) }.after_commit = true;
    match unsafe { inner_methods(file) }.xSync {
        Some(sync) => unsafe { sync(inner(file), flags) },
        None => ffi::SQLITE_IOERR_FSYNC,
    }
}

/// Methods that pass the call on to the default VFS's object; with `flush`, after writing
/// what is gathered (a failed write is the call's error).
macro_rules! pass_on {
    ($name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls this on a file `open` made; its arguments are passed on.
            match unsafe { inner_methods(file) }.$method {
                Some(method) => unsafe { method(inner(file) $(, $arg)*) },
                None => $missing,
            }
        }
    };
    (flush $name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls this on a file `open` made; its arguments are passed on.
            let rc = unsafe { flush_file(file) };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match unsafe { inner_methods(file) }.$method {
                Some(method) => unsafe { method(inner(file) $(, $arg)*) },
                None => $missing,
            }
        }
    };
}

pass_on!(flush wal_read, xRead, ffi::SQLITE_IOERR_READ,
    (data: *mut c_void, amount: c_int, offset: i64));
pass_on!(flush wal_file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut i64));
pass_on!(flush wal_file_control, xFileControl, ffi::SQLITE_NOTFOUND,
    (op: c_int, arg: *mut c_void));

pass_on!(wal_lock, xLock, ffi::SQLITE_OK, (level: c_int) -> c_int);
pass_on!(wal_unlock, xUnlock, ffi::SQLITE_OK, (level: c_int) -> c_int);
pass_on!(wal_check_reserved, xCheckReservedLock, ffi::SQLITE_OK, (out: *mut c_int) -> c_int);
pass_on!(wal_sector_size, xSectorSize, 4096, () -> c_int);
pass_on!(wal_device, xDeviceCharacteristics, 0, () -> c_int);
pass_on!(wal_shm_map, xShmMap, ffi::SQLITE_IOERR_SHMMAP,
    (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
pass_on!(wal_shm_lock, xShmLock, ffi::SQLITE_IOERR_SHMLOCK,
    (offset: c_int, n: c_int, flags: c_int) -> c_int);
pass_on!(wal_shm_barrier, xShmBarrier, (), () -> ());
pass_on!(wal_shm_unmap, xShmUnmap, ffi::SQLITE_OK, (delete: c_int) -> c_int);
pass_on!(wal_unfetch, xUnfetch, ffi::SQLITE_OK, (offset: i64, p: *mut c_void) -> c_int);

/// SQLite never maps a WAL file into memory; if it ever asked, it gets no mapping and reads
/// with `xRead` (its documented fallback).
unsafe extern "C" fn wal_fetch(
    _file: *mut ffi::sqlite3_file,
    _offset: i64,
    _amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    unsafe { *out = ptr::null_mut() };
    ffi::SQLITE_OK
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device),
    xShmMap: Some(wal_shm_map),
    xShmLock: Some(wal_shm_lock),
    xShmBarrier: Some(wal_shm_barrier),
    xShmUnmap: Some(wal_shm_unmap),
    xFetch: Some(wal_fetch),
    xUnfetch: Some(wal_unfetch),
};
