//! Where a process's memory cgroup keeps its peak and its limit, from the text of
//! `/proc/self/cgroup`: the environment's memory figure as Lambda reports it (`Max Memory Used`
//! in the REPORT line counts every process of the environment, not the runtime alone).

/// The files of one memory cgroup, under the usual mount points (`/sys/fs/cgroup/memory` for
/// cgroup v1's memory hierarchy, `/sys/fs/cgroup` for cgroup v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The highest memory use the cgroup has had, in bytes (`memory.max_usage_in_bytes`,
    /// `memory.peak`).
    pub peak: String,
    /// Its limit, in bytes (`memory.limit_in_bytes`, `memory.max`).
    pub limit: String,
}

/// The memory cgroups `/proc/self/cgroup` names, cgroup v1's memory hierarchy first (where a
/// system has both, v1's holds the memory controller), then the unified one.
pub fn memory_cgroups(proc_self_cgroup: &str) -> Vec<MemoryCgroup> {
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            continue;
        }
        let path = path.trim_end_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            v1.push(MemoryCgroup {
                peak: format!("{dir}/memory.max_usage_in_bytes"),
                limit: format!("{dir}/memory.limit_in_bytes"),
            });
        } else if controllers.is_empty() {
            let dir = format!("/sys/fs/cgroup{path}");
            v2.push(MemoryCgroup {
                peak: format!("{dir}/memory.peak"),
                limit: format!("{dir}/memory.max"),
            });
        }
    }
    v1.extend(v2);
    v1
}

/// Whether a limit file's text (`memory.limit_in_bytes`, `memory.max`) is `memory_size_mb`
/// MiB: the cgroup Lambda bounds an environment with.
pub fn limit_is(text: &str, memory_size_mb: u64) -> bool {
    let Some(size) = memory_size_mb.checked_mul(1 << 20).filter(|s| *s > 0) else {
        return false;
    };
    text.trim().parse::<u64>().is_ok_and(|bytes| bytes == size)
}

/// The number of bytes a peak file holds, as KiB.
pub fn peak_kb(text: &[u8]) -> Option<u64> {
    let digits = text.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .map(|bytes| bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_memory_hierarchy_comes_before_the_unified_one() {
        let text =
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/91da\n1:cpu,cpuacct:/\n0::/x\n";
        let found = memory_cgroups(text);
        assert_eq!(
            found,
            [
                MemoryCgroup {
                    peak: "/sys/fs/cgroup/memory/process_api/91da/memory.max_usage_in_bytes".into(),
                    limit: "/sys/fs/cgroup/memory/process_api/91da/memory.limit_in_bytes".into(),
                },
                MemoryCgroup {
                    peak: "/sys/fs/cgroup/x/memory.peak".into(),
                    limit: "/sys/fs/cgroup/x/memory.max".into(),
                },
            ]
        );
    }

    #[test]
    fn unified_only_and_root_cgroups() {
        assert_eq!(
            memory_cgroups("0::/\n"),
            [MemoryCgroup {
                peak: "/sys/fs/cgroup/memory.peak".into(),
                limit: "/sys/fs/cgroup/memory.max".into(),
            }]
        );
        assert_eq!(
            memory_cgroups("5:cpuset,memory:/a/b/\n")
                .first()
                .map(|c| c.peak.as_str()),
            Some("/sys/fs/cgroup/memory/a/b/memory.max_usage_in_bytes")
        );
    }

    #[test]
    fn lines_that_name_no_usable_path_are_skipped() {
        // A cgroup outside this namespace's root reads as a relative path; garbage has no path.
        let text = "4:memory:/../../other\n0::relative\ngarbage\n\n3:cpu:/\n";
        assert!(memory_cgroups(text).is_empty());
    }

    #[test]
    fn the_limit_must_be_the_memory_size_exactly() {
        assert!(limit_is("134217728\n", 128));
        assert!(!limit_is("134221824\n", 128));
        assert!(!limit_is("max\n", 128));
        assert!(!limit_is("9223372036854771712\n", 128));
        assert!(!limit_is("0\n", 0));
        // A size that does not fit in bytes is no cgroup's (it would wrap to 128 MiB).
        assert!(!limit_is("134217728\n", (1 << 44) + 128));
    }

    #[test]
    fn peaks_are_whole_numbers_of_bytes() {
        assert_eq!(peak_kb(b"59875328\n"), Some(58_472));
        assert_eq!(peak_kb(b"  1024"), Some(1));
        assert_eq!(peak_kb(b""), None);
        assert_eq!(peak_kb(b"12a\n"), None);
        assert_eq!(peak_kb(b"99999999999999999999999\n"), None);
    }
}
