//! What a running function process has used, read from `/proc` (Linux): its CPU time and its
//! peak resident memory.

use std::path::Path;
use std::time::Duration;

/// CPU time of every live thread of process `pid`, from `/proc/<pid>/task/*/schedstat` (whose
/// first field is nanoseconds on a CPU). The process's own `schedstat` is its main thread's
/// only, and a multi-thread runtime works on the others; `/proc/<pid>/stat` counts them all
/// but in clock ticks (10 ms), too coarse for one invocation.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // a thread that ended since the listing has no file any more
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        nanos += schedstat_nanos(&text).ok_or_else(|| unreadable(&path))?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// The highest resident set size of process `pid` so far, in kilobytes (`VmHWM` in
/// `/proc/<pid>/status`).
pub fn peak_memory_kb(pid: u32) -> std::io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)?;
    status_kb(&text, "VmHWM").ok_or_else(|| unreadable(Path::new(&path)))
}

fn unreadable(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is not in the expected form", path.display()),
    )
}

/// The first field of a `schedstat` line: time spent on a CPU, in nanoseconds.
pub fn schedstat_nanos(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`, in kilobytes.
pub fn status_kb(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = value.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        (parts.next() == Some("kB")).then_some(number)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_its_first_field() {
        assert_eq!(schedstat_nanos("2795104 61537 5\n"), Some(2_795_104));
        assert_eq!(schedstat_nanos(""), None);
        assert_eq!(schedstat_nanos("x 1 2"), None);
    }

    #[test]
    fn status_gives_the_named_line_in_kilobytes() {
        let status = "Name:\tintake\nVmPeak:\t  120000 kB\nVmHWM:\t   14336 kB\nVmRSS:\t   12000 kB\nThreads:\t3\n";
        assert_eq!(status_kb(status, "VmHWM"), Some(14_336));
        assert_eq!(status_kb(status, "VmRSS"), Some(12_000));
        // a name that only starts another line's, and a line without its unit, are not read
        assert_eq!(status_kb(status, "Vm"), None);
        assert_eq!(status_kb(status, "Threads"), None);
        assert_eq!(status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_ok_and(|cpu| cpu > Duration::ZERO));
        assert!(peak_memory_kb(pid).is_ok_and(|kb| kb > 0));
    }
}
