// CpuBudget: the affinity mask and the cgroup CPU quota, read from a
// directory laid out as /proc and /sys are, so each cgroup layout (v2, v1,
// a container's view, an ancestor's limit) is checked on any machine.
#include <gtest/gtest.h>
#include <sched.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "ringlb/cpu_budget.hpp"

namespace {

namespace fs = std::filesystem;
using ringlb::usable_cpus;
namespace cgroup = ringlb::cgroup;

unsigned affinity() {
    cpu_set_t set;
    CPU_ZERO(&set);
    EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    return static_cast<unsigned>(CPU_COUNT(&set));
}

class FakeRoot {
public:
    FakeRoot() : dir_(fs::temp_directory_path() / ("ringlb-cpu-" + std::to_string(::getpid()) + "-" +
                                                   std::to_string(counter_++))) {
        fs::create_directories(dir_);
    }
    ~FakeRoot() { fs::remove_all(dir_); }
    void write(const std::string& path, const std::string& text) {
        const fs::path p = dir_ / path.substr(1);
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }
    std::string str() const { return dir_.string(); }

private:
    static inline int counter_ = 0;
    fs::path dir_;
};

TEST(CpuBudget, ParsesTheQuotaFiles) {
    EXPECT_EQ(cgroup::v2_quota("max 100000\n"), std::nullopt);
    EXPECT_DOUBLE_EQ(cgroup::v2_quota("150000 100000\n").value(), 1.5);
    EXPECT_DOUBLE_EQ(cgroup::v2_quota("50000 100000").value(), 0.5);
    for (const char* bad : {"", "150000", "x 100000", "0 100000", "100 0", "1 2 3", "-5 100000"}) {
        EXPECT_EQ(cgroup::v2_quota(bad), std::nullopt) << bad;
    }
    EXPECT_EQ(cgroup::v1_quota("-1\n", "100000\n"), std::nullopt);
    EXPECT_DOUBLE_EQ(cgroup::v1_quota("200000\n", "100000\n").value(), 2.0);
    EXPECT_EQ(cgroup::v1_quota("abc", "100000"), std::nullopt);
}

TEST(CpuBudget, WithoutCgroupFilesTheAffinityMaskDecides) {
    FakeRoot root;
    const auto b = usable_cpus(root.str());
    EXPECT_EQ(b.cpus, affinity());
    EXPECT_NE(b.reason.find("affinity mask"), std::string::npos) << b.reason;
}

TEST(CpuBudget, AQuotaOnAnAncestorCgroupV2LimitsTheLeaf) {
    FakeRoot root;
    root.write("/proc/self/mountinfo",
               "24 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
    root.write("/proc/self/cgroup", "0::/svc/lb\n");
    root.write("/sys/fs/cgroup/svc/cpu.max", "50000 100000\n");
    root.write("/sys/fs/cgroup/svc/lb/cpu.max", "max 100000\n");
    const auto b = usable_cpus(root.str());
    EXPECT_EQ(b.cpus, 1u);
    if (affinity() > 1) {
        EXPECT_EQ(b.reason, "cgroup CPU quota 0.5 (of " + std::to_string(affinity()) +
                                " CPUs in the affinity mask)");
    }
}

TEST(CpuBudget, AContainersCgroupV1ViewIsReadAtTheMount) {
    // Without a cgroup namespace, /proc/self/cgroup names the host's path
    // and the mount shows that subtree at its mount point.
    FakeRoot root;
    root.write("/proc/self/mountinfo",
               "30 25 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup "
               "rw,cpu,cpuacct\n"
               "31 25 0:27 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n");
    root.write("/proc/self/cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
    root.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
    root.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    EXPECT_EQ(usable_cpus(root.str()).cpus, 1u);
}

TEST(CpuBudget, AQuotaAboveTheAffinityMaskChangesNothingAndFractionsRoundUp) {
    FakeRoot root;
    root.write("/proc/self/mountinfo", "24 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    root.write("/proc/self/cgroup", "0::/\n");
    root.write("/sys/fs/cgroup/cpu.max", "6400000 100000\n");  // 64 CPUs
    EXPECT_EQ(usable_cpus(root.str()).cpus, std::min(affinity(), 64u));
    root.write("/sys/fs/cgroup/cpu.max", "120000 100000\n");  // 1.2 CPUs: 2 threads
    EXPECT_EQ(usable_cpus(root.str()).cpus, std::min(affinity(), 2u));
}

TEST(CpuBudget, ThisMachinesBudgetIsBetweenOneAndTheAffinityMask) {
    const auto b = usable_cpus();
    EXPECT_GE(b.cpus, 1u);
    EXPECT_LE(b.cpus, affinity());
    EXPECT_FALSE(b.reason.empty());
}

}  // namespace
