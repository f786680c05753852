//! The allocator: mimalloc, tuned to give memory back. By default mimalloc 3 returns freed
//! pages to the OS a second after they were freed, and only when it allocates again, so an idle
//! registry kept the high-water mark of its last burst (a password hash's 19 MiB, a large
//! packument's rendering). With the delay at 0, measured on a 2-core machine: resident memory
//! after four sign-ups fell from 49 to 32 MB, with no change in read throughput beyond the
//! runs' noise.
//!
//! `MIMALLOC_PURGE_DELAY` still overrides it. A thread's emptied pages are only freed when that
//! thread allocates again, though, so each serving thread also collects its heap every ten
//! seconds ([`upkeep`]).
//!
//! mimalloc reserves its memory in 1 GiB arenas, committed up front, and where the kernel offers
//! transparent huge pages for them the first byte touched in each 2 MiB makes all of it
//! resident: 14 MB of a fresh registry's 30 MB were such pages, mostly empty. tessera turns
//! transparent huge pages off for itself (`PR_SET_THP_DISABLE`; `MIMALLOC_ALLOW_THP` in the
//! environment keeps the system's setting), so memory is resident in 4 KiB pages as it is used.
//!
//! SQLite is C and allocates with the C library's `malloc`, not through Rust. glibc gives each
//! thread that allocates under contention an arena of its own, and SQLite runs each pooled
//! connection on its own thread: after a large packument's first reads, eight arenas of about
//! 7.5 MB each stayed resident (page caches, sort buffers, freed but not returned). tessera
//! caps glibc at two arenas (`MALLOC_ARENA_MAX` still overrides) and asks it every ten seconds
//! to return what is free (`malloc_trim`).

/// mimalloc's `mi_option_purge_delay` (mimalloc 3's `mi_option_e`): milliseconds before a free
/// page goes back to the OS.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How often glibc is asked to return free memory.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets mimalloc's purge delay to 0, turns transparent huge pages off for the process and caps
/// glibc's arenas, unless the environment sets them. Call first thing in `main`, before other
/// threads start.
pub fn tune() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process's memory map.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores an integer in mimalloc's option table; the purge
        // delay is read afresh wherever mimalloc purges.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator; arenas made later honour it.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

/// Asks glibc every [`TRIM_EVERY`] to give its free memory back to the OS (on a blocking thread:
/// a trim walks the arenas).
pub fn spawn_trims() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only releases free memory held by glibc's allocator.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}

/// What each serving thread does every [`TRIM_EVERY`]: return the free pages of its own
/// mimalloc heap to the OS. mimalloc keeps a thread's emptied pages ("retired") until that
/// thread allocates again, so a thread gone idle after a burst kept several MB; a forced
/// collection frees them (measured: 3 MB of a 37 MB registry at rest after the bench's reads).
pub fn upkeep() -> Option<tessera_server::http::listener::Upkeep> {
    Some(tessera_server::http::listener::Upkeep {
        every: TRIM_EVERY,
        // SAFETY: mi_collect only frees memory this thread's heap holds unused.
        run: || unsafe { libmimalloc_sys::mi_collect(true) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(option: libmimalloc_sys::mi_option_t) -> std::ffi::c_long {
        // SAFETY: mi_option_get only reads mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    #[test]
    fn the_number_names_the_purge_delay_and_tuning_sets_it() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // mimalloc 3's own default purge delay: a wrong number would show another option's
        assert_eq!(get(PURGE_DELAY), 1000);
        tune();
        assert_eq!(get(PURGE_DELAY), 0);
    }
}
