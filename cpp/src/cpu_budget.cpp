#include "ringlb/cpu_budget.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace ringlb {
namespace {

std::optional<long long> to_int(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
    long long v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        const std::size_t end = s.find(sep, start);
        parts.push_back(s.substr(start, end == s.npos ? s.npos : end - start));
        if (end == s.npos) return parts;
        start = end + 1;
    }
}

bool has_token(std::string_view list, std::string_view token) {
    for (const auto t : split(list, ',')) {
        if (t == token) return true;
    }
    return false;
}

// One cgroup hierarchy that can hold a CPU quota: where it is mounted, the
// part of the cgroup tree the mount shows (a container sees its own subtree
// as "/"), and this process's cgroup in it.
struct Hierarchy {
    bool v2 = false;
    std::string mount_point, mount_root;
    std::string path;  // starts with '/'; empty: this process is not in this hierarchy
};

// /proc/self/mountinfo (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". The v1 hierarchy is the one whose
// super options name the cpu controller.
std::vector<Hierarchy> mounts(std::string_view mountinfo) {
    std::vector<Hierarchy> found;
    for (const auto line : split(mountinfo, '\n')) {
        const auto f = split(line, ' ');
        const auto dash = std::find(f.begin(), f.end(), "-");
        if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
        const std::string_view fstype = dash[1], super = dash[3];
        if (fstype == "cgroup2" || (fstype == "cgroup" && has_token(super, "cpu"))) {
            found.push_back({fstype == "cgroup2", std::string(f[4]), std::string(f[3]), {}});
        }
    }
    return found;
}

// /proc/self/cgroup (cgroups(7)): "0::PATH" for v2, "N:cpu,cpuacct:PATH" for v1.
void attach_paths(std::vector<Hierarchy>& hs, std::string_view proc_cgroup) {
    for (const auto line : split(proc_cgroup, '\n')) {
        const auto f = split(line, ':');
        if (f.size() < 3) continue;
        const bool v2 = f[0] == "0" && f[1].empty();
        if (!v2 && !has_token(f[1], "cpu")) continue;
        const std::string_view path = line.substr(f[0].size() + f[1].size() + 2);
        for (auto& h : hs) {
            if (h.v2 != v2) continue;
            // The mount shows the tree from mount_root down: strip it.
            std::string_view rel = path;
            if (h.mount_root != "/" && rel.starts_with(h.mount_root)) rel.remove_prefix(h.mount_root.size());
            h.path = rel.empty() ? "/" : std::string(rel);
        }
    }
}

// The smallest quota from this process's cgroup up to the mount: a limit set
// on an ancestor applies to every cgroup below it.
std::optional<double> quota_of(const std::string& root, const Hierarchy& h) {
    std::optional<double> least;
    std::string rel = h.path;
    for (;;) {
        const std::string dir = root + h.mount_point + (rel == "/" ? "" : rel) + "/";
        std::optional<double> q;
        if (h.v2) {
            if (const auto m = read_file(dir + "cpu.max")) q = cgroup::v2_quota(*m);
        } else {
            const auto quota = read_file(dir + "cpu.cfs_quota_us");
            const auto period = read_file(dir + "cpu.cfs_period_us");
            if (quota && period) q = cgroup::v1_quota(*quota, *period);
        }
        if (q && (!least || *q < *least)) least = q;
        if (rel == "/") return least;
        const std::size_t slash = rel.find_last_of('/');
        rel = slash == 0 ? "/" : rel.substr(0, slash);
    }
}

std::string format_cpus(double cpus) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", cpus);
    return buf;
}

}  // namespace

namespace cgroup {

std::optional<double> v2_quota(std::string_view cpu_max) {
    const auto f = split(cpu_max.substr(0, cpu_max.find('\n')), ' ');
    if (f.size() != 2 || f[0] == "max") return std::nullopt;
    const auto quota = to_int(f[0]), period = to_int(f[1]);
    if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
    return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> v1_quota(std::string_view quota_us, std::string_view period_us) {
    const auto quota = to_int(quota_us), period = to_int(period_us);
    if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // -1: none
    return static_cast<double>(*quota) / static_cast<double>(*period);
}

}  // namespace cgroup

CpuBudget usable_cpus(const std::string& root) {
    CpuBudget b;
    cpu_set_t set;
    CPU_ZERO(&set);
    unsigned affinity = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) affinity = static_cast<unsigned>(CPU_COUNT(&set));
    if (affinity == 0) affinity = std::max(1u, std::thread::hardware_concurrency());
    b.cpus = affinity;
    b.reason = std::to_string(affinity) + " CPU" + (affinity == 1 ? "" : "s") +
               " in the affinity mask";

    const auto mountinfo = read_file(root + "/proc/self/mountinfo");
    const auto proc_cgroup = read_file(root + "/proc/self/cgroup");
    if (!mountinfo || !proc_cgroup) return b;
    auto hs = mounts(*mountinfo);
    attach_paths(hs, *proc_cgroup);
    std::optional<double> quota;
    for (const auto& h : hs) {
        if (h.path.empty()) continue;  // mounted, but this process is not in it
        const auto q = quota_of(root, h);
        if (q && (!quota || *q < *quota)) quota = q;
    }
    if (quota) {
        const auto by_quota = static_cast<unsigned>(std::max(1.0, std::ceil(*quota)));
        if (by_quota < b.cpus) {
            b.cpus = by_quota;
            b.reason = "cgroup CPU quota " + format_cpus(*quota) + " (of " + b.reason + ")";
        }
    }
    return b;
}

}  // namespace ringlb
