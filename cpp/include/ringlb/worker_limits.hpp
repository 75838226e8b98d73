// WorkerLimits: one I/O thread's copy of the router's live settings
// (RouterLimits, changed by Router::reconfigure).
//
// A session holds a Lease on the version its request started with and reads
// only that one, so a reload never changes a request halfway; it renews the
// lease when its next request starts, which costs one pointer comparison
// while nothing changed. publish() makes a new version current for the
// requests that start after it; an old one is freed with its last lease.
// Everything here runs on the owning I/O thread (or while it is stopped):
// the lease counts are plain integers, so a request adds no atomic operation.
#pragma once

#include <cstddef>

#include "ringlb/router_limits.hpp"

namespace ringlb {

class WorkerLimits {
    struct Version {
        RouterLimits values;
        std::size_t leases = 0;
        bool retired = false;  // no longer current: freed with its last lease
    };

public:
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&& other) noexcept : v_(other.v_) { other.v_ = nullptr; }
        Lease& operator=(Lease&& other) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease() { release(); }

        // Precondition: the lease holds a version (WorkerLimits::lease, renew).
        const RouterLimits& operator*() const noexcept { return v_->values; }
        const RouterLimits* operator->() const noexcept { return &v_->values; }

    private:
        friend class WorkerLimits;
        explicit Lease(Version* v) noexcept;
        void release() noexcept;
        Version* v_ = nullptr;
    };

    explicit WorkerLimits(const RouterLimits& initial);
    ~WorkerLimits();
    WorkerLimits(const WorkerLimits&) = delete;
    WorkerLimits& operator=(const WorkerLimits&) = delete;

    const RouterLimits& current() const noexcept { return current_->values; }
    // Makes `next` current; leases on the old version keep reading it.
    void publish(const RouterLimits& next);
    // A lease on the current version.
    Lease lease() { return Lease(current_); }
    // Points `lease` at the current version; true when it changed.
    bool renew(Lease& lease) {
        if (lease.v_ == current_) return false;
        lease = this->lease();
        return true;
    }

private:
    Version* current_;
};

}  // namespace ringlb
