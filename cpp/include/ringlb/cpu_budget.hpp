// CpuBudget: how many CPUs this process may really use, which is what the
// router's default thread count follows. hardware_concurrency() counts the
// machine's CPUs, but a process pinned by taskset/cpuset, or in a container
// with a CPU quota (docker --cpus), gets fewer: two threads sharing one CPU
// only add context switches and tail latency. Go's runtime (GOMAXPROCS, since
// 1.25) and the JVM (ActiveProcessorCount) read the same two limits.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ringlb {

struct CpuBudget {
    unsigned cpus = 1;   // >= 1
    std::string reason;  // for the log: which limit decided, e.g. "cgroup CPU quota 1.5"
};

// The affinity mask (sched_getaffinity) and the cgroup CPU quota of this
// process: the smaller of the two, the quota rounded up. `root` is where
// /proc and /sys are found (tests give a directory laid out the same way).
CpuBudget usable_cpus(const std::string& root = "");

namespace cgroup {
// The pure parts of usable_cpus, for tests. A quota in CPUs, or nullopt for
// none. v2: the contents of cpu.max ("max 100000", "150000 100000"); v1:
// cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us.
std::optional<double> v2_quota(std::string_view cpu_max);
std::optional<double> v1_quota(std::string_view quota_us, std::string_view period_us);
}  // namespace cgroup

}  // namespace ringlb
