//! Asks the Linux kernel whether the system clock is synchronised, with `adjtimex(2)` in
//! read-only mode (`modes = 0`).
//!
//! This crate holds the project's only `unsafe` block: the FFI call itself. Everything else in
//! the workspace forbids unsafe code. On other systems [`status`] reports "unknown".

/// What the kernel says about the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// False when the kernel reports TIME_ERROR or STA_UNSYNC: no time source disciplines it.
    pub synchronized: bool,
    /// The kernel's maximum error estimate, in microseconds.
    pub max_error_us: i64,
    /// The kernel's estimated error, in microseconds.
    pub est_error_us: i64,
}

/// Reads the kernel clock status. `Err` when the call failed or the platform has none.
#[cfg(target_os = "linux")]
pub fn status() -> std::io::Result<ClockStatus> {
    // SAFETY: `tx` is a zeroed, properly aligned `timex` owned by this frame; with
    // `modes = 0` adjtimex only writes the current values into it and changes nothing.
    #[allow(unsafe_code)]
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    #[allow(unsafe_code)]
    // SAFETY: see above; the pointer is valid for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unsync = state == libc::TIME_ERROR || (tx.status & libc::STA_UNSYNC) != 0;
    Ok(ClockStatus {
        synchronized: !unsync,
        max_error_us: tx.maxerror,
        est_error_us: tx.esterror,
    })
}

/// Reads the kernel clock status. `Err` when the call failed or the platform has none.
#[cfg(not(target_os = "linux"))]
pub fn status() -> std::io::Result<ClockStatus> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "clock status is only read on Linux",
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_can_be_read_on_linux() {
        // Whether the clock is synchronised depends on the machine; that the call works does not.
        let s = super::status().expect("adjtimex read");
        assert!(s.max_error_us >= 0, "{s:?}");
    }
}
